"""`Idempotency-Key` for every creating POST (contract, section General).

The key's record is written in the same transaction as the operation it answers for:
- a replay with the same key and body gets the first answer (same status and body) and
  changes nothing; with another body it gets 422 `idempotency_key_reused`;
- two requests with one key at the same moment: the second waits on the unique index until
  the first commits, then replays its answer, so exactly one thing is created;
- the operation runs in a savepoint: an answer that refuses (409...) keeps nothing but the
  record; a 400 validation error is not kept (nothing was attempted, the client may fix the
  body and retry with the same key); a server error is not kept either, so a retry can succeed.
"""

import functools
import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework import status
from rest_framework.response import Response

from .compiled import Unpreparable, insert_unless_taken, row_update
from .models import ApiClient, IdempotencyRecord

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _scope(request) -> str:
    user = request.user
    return f"client:{user.pk}" if isinstance(user, ApiClient) else f"user:{user.pk}"


def _fingerprint(request) -> str:
    body = json.dumps(request.data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(f"{request.method} {request.path}\n{body}".encode()).hexdigest()


def _error(status_code: int, code: str, detail: str) -> Response:
    return Response({"code": code, "detail": detail}, status=status_code)


def _replay(record: IdempotencyRecord, fingerprint: str) -> Response:
    if record.fingerprint != fingerprint:
        return _error(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            "idempotency_key_reused",
            "This Idempotency-Key was used with a different request body.",
        )
    response = Response(record.response_body, status=record.status_code)
    response["Idempotent-Replayed"] = "true"
    return response


def _claim(request, fingerprint: str) -> dict:
    """The fields of a key's record while its request runs (no answer yet: status 0)."""
    return {
        "method": request.method,
        "path": request.path[:500],
        "fingerprint": fingerprint,
        "status_code": 0,
    }


def _bad_key(key: str) -> Response | None:
    if not key.strip() or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        return _error(
            status.HTTP_400_BAD_REQUEST,
            "invalid_idempotency_key",
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters.",
        )
    return None


def _claimed(record: IdempotencyRecord) -> bool:
    """Write the key's record unless the key is taken (after waiting for a request that is
    writing it to end): no IntegrityError, so no savepoint to roll back to, two statements
    fewer on every keyed POST. A database that cannot skip a conflict takes the savepoint."""
    try:
        return insert_unless_taken(record)
    except Unpreparable:
        pass
    try:
        with transaction.atomic():
            record.save(force_insert=True)
    except IntegrityError:
        return False
    return True


def idempotent(handler):
    """Wrap a DRF view's `post` (or `create`) so it honours `Idempotency-Key`."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        if (bad := _bad_key(key)) is not None:
            return bad
        scope, fingerprint = _scope(request), _fingerprint(request)
        with transaction.atomic():
            record = IdempotencyRecord(scope=scope, key=key, **_claim(request, fingerprint))
            if not _claimed(record):
                # Either answered before, or answered by a request that just committed.
                return _replay(IdempotencyRecord.objects.get(scope=scope, key=key), fingerprint)

            try:
                with transaction.atomic():
                    response = handler(view, request, *args, **kwargs)
                    if response.status_code >= 400:
                        raise _Refused(response)
            except _Refused as refused:
                response = refused.response
            except Exception as exc:  # a domain error: turned into its answer here
                response = view.handle_exception(exc)
            if response.status_code >= 500 or response.status_code == 400:
                transaction.set_rollback(True)
                return response
            record.status_code = response.status_code
            record.response_body = response.data
            row_update(record, fields=["status_code", "response_body"])
            return response

    wrapper.idempotent = True  # the schema documents the header and 422 for it
    return wrapper


def idempotent_each(handler):
    """`Idempotency-Key` for a batch whose items are each idempotent on their own and commit
    one by one (a till's offline sales, by their `client_id`): the batch is not one
    transaction, which would hold every sale's stock rows until its end, so two tills
    syncing the same SKUs in another order waited on each other until PostgreSQL killed one
    batch. The key's record is claimed first, in its own commit, for this body: another body
    under the key is 422 before anything runs; the same body replays the answer once there
    is one, and runs again until then (its items answer as already recorded), after a
    server error too, since some items may have been recorded. A 400 (nothing was tried)
    gives the key back."""

    @functools.wraps(handler)
    def wrapper(view, request, *args, **kwargs):
        key = request.headers.get(HEADER)
        if key is None:
            return handler(view, request, *args, **kwargs)
        if (bad := _bad_key(key)) is not None:
            return bad
        scope, fingerprint = _scope(request), _fingerprint(request)
        record, claimed = IdempotencyRecord.objects.get_or_create(
            scope=scope, key=key, defaults=_claim(request, fingerprint)
        )
        if not claimed and (record.fingerprint != fingerprint or record.status_code):
            return _replay(record, fingerprint)
        try:
            response = handler(view, request, *args, **kwargs)
        except Exception as exc:  # a domain error: turned into its answer here
            response = view.handle_exception(exc)  # anything else: a 500, the key kept
        if response.status_code >= 500:
            return response  # the key stays this body's: a retry of it runs again
        if response.status_code == 400:
            IdempotencyRecord.objects.filter(pk=record.pk, status_code=0).delete()
            return response
        IdempotencyRecord.objects.filter(pk=record.pk).update(
            status_code=response.status_code, response_body=response.data
        )
        return response

    wrapper.idempotent = True
    return wrapper


def idempotency_records_purge(*, older_than_hours: int | None = None) -> int:
    """Forget answers older than the retention period (a client retries within hours)."""
    hours = older_than_hours or settings.IDEMPOTENCY_KEY_TTL_HOURS
    cutoff = timezone.now() - timedelta(hours=hours)
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=cutoff).delete()
    return deleted
