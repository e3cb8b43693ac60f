"""Everything behind app.py that is not Gradio (recsys.app.views for now)."""
