"""How the web server runs, in one place: `make run` (Procfile), docker-compose and the
Dockerfile start gunicorn with `--config gunicorn.conf.py`, and `make bench` measures that.

Threads in a few processes: a thread waiting on PostgreSQL or Redis lets another run, and a
slow client holds a thread, not a whole process. Python runs one thread at a time per
process, so processes follow the cores. Each client's kept-alive connection stays with the
process that accepted it, which can leave one process busier than the other under a few
heavy clients (measured in `make bench`, see the issue notes); a proxy in front spreads
requests evenly.

WEB_CONCURRENCY (processes, default: the cores) and WEB_THREADS (threads per process,
default 4) override the defaults.
"""

import os

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 2)
threads = int(os.environ.get("WEB_THREADS") or 4)
