"""Training curves of a neural model: train loss and validation HR@10 / NDCG@10 per epoch."""

from pathlib import Path

from matplotlib.figure import Figure  # no pyplot: no global backend or figure state


def plot_training_curves(history: list[dict], path: str | Path, best_epoch: int | None = None,
                         title: str | None = None, metrics: tuple[str, ...] = ("hr@10", "ndcg@10")) -> Path:
    """Write a two-panel PNG from `fit`'s per-epoch history (keys "epoch", "train_loss", metric names)."""
    fig = Figure(figsize=(9, 3.6), layout="constrained")
    loss_ax, val_ax = fig.subplots(1, 2)
    epochs = [row["epoch"] for row in history]
    loss_ax.plot(epochs, [row.get("train_loss") for row in history], marker="o", color="tab:red")
    loss_ax.set(xlabel="epoch", ylabel="train loss (cross-entropy)", title="training loss")
    for name in metrics:
        points = [(row["epoch"], row[name]) for row in history if row.get(name) is not None]
        if points:
            val_ax.plot(*zip(*points, strict=True), marker="o", label=f"valid {name.upper()}")
    val_ax.set(xlabel="epoch", ylabel="metric", title="validation")
    if best_epoch is not None:
        for ax in (loss_ax, val_ax):
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label="best epoch")
    if val_ax.lines:
        val_ax.legend(loc="lower right")
    for ax in (loss_ax, val_ax):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
