"""`python -m recsys.bench WORKER JSON`: one measured step in a child process (see recsys.bench.common.run_child)."""

import sys

from recsys.bench import _worker_main

sys.exit(_worker_main(sys.argv[1:]))
