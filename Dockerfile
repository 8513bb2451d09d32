FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    DJANGO_SETTINGS_MODULE=omnichannel.settings_production \
    VAR_DIR=/app/var

WORKDIR /app
COPY pyproject.toml README.md ./
COPY omnichannel ./omnichannel
COPY catalog ./catalog
COPY inventory ./inventory
COPY orders ./orders
COPY customers ./customers
COPY analytics ./analytics
COPY templates ./templates
COPY manage.py Procfile gunicorn.conf.py ./
RUN pip install . \
    && SECRET_KEY=build-only-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz \
       ALLOWED_HOSTS=build python manage.py collectstatic --noinput --verbosity 0 \
    && useradd --create-home --uid 10001 app \
    && mkdir -p /app/var && chown -R app /app/var

USER app
EXPOSE 8000
CMD ["gunicorn", "omnichannel.wsgi", "--config", "gunicorn.conf.py", "--bind", "0.0.0.0:8000", "--access-logfile", "-"]
