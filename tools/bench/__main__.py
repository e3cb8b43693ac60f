"""`python -m tools.bench WORKER JSON`: one measured step in a child process (see tools.bench.common.run_child)."""

import sys

from tools.bench import worker_main

sys.exit(worker_main(sys.argv[1:]))
