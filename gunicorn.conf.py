"""How the web server runs, in one place: `make run` (Procfile), docker-compose and the
Dockerfile start gunicorn with `--config gunicorn.conf.py`, and `make bench` measures that.

One thread per process, processes following the cores. Python runs one thread at a time
per process, and handing that turn between threads cost about 0.7 ms of CPU an order: with
4 threads, `make bench` (2 cores) placed 310 orders/s at 8 clients, p99 54 ms; with 1, 321/s,
p99 45 ms, and every read on the large demo answered faster (availability at 16 clients,
p99 40 -> 29 ms; order list 48 -> 38 ms; member detail 43 -> 32 ms). The gthread worker still
keeps idle kept-alive connections aside, so one thread serves many clients in turn.

The price: a request holds its whole process while it runs, so a client sending its request
slowly stalls that process. Put a buffering proxy in front (nginx, a cloud load balancer:
the production settings expect one), or raise WEB_THREADS where clients reach gunicorn
directly. Each client's kept-alive connection stays with the process that accepted it, so a
few heavy clients can leave one process busier than another; the proxy spreads them too.

WEB_CONCURRENCY (processes, default: the cores) and WEB_THREADS (threads per process,
default 1) override the defaults.
"""

import os

worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 2)
threads = int(os.environ.get("WEB_THREADS") or 1)
