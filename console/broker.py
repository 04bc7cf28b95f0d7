"""The two brokers' transports, made safe for a worker that runs for months.

The embedded broker of `make run` is kombu's filesystem transport.

kombu's own ``_put`` creates the message file and then writes it, and ``_get`` lists the folder and reads whatever
ends in ``.<queue>.msg``. When beat publishes while the worker polls, the worker can read a file that is still
empty or half written; ``json.loads`` raises and the worker dies with "Unrecoverable error: JSONDecodeError".

This subclass fixes both ends where they belong:

- ``_put`` writes ``<name>.msg.tmp`` and renames it to ``<name>.msg`` (``os.replace`` is atomic on one
  filesystem), so a reader only ever sees complete messages;
- ``_get`` sets aside a message it cannot decode (one left by an older writer, a disk that filled up mid-write, a
  hand-edited file): the file goes to the ``quarantine`` folder beside the queue, one warning is logged, the health
  panel counts it, and the worker carries on with the next message.

It is selected in settings (``CELERY_BROKER_TRANSPORT``) whenever CELERY_BROKER_URL is ``filesystem://``.

The production broker is Redis. When Redis restarts, Celery's consumer closes its connection; kombu detaches the
transport from its Connection (``transport.client = None``) before the channel opened on it is closed, and closing
the channel restores its unacknowledged messages through a new connection pool whose parameters are read from
``transport.client`` — ``AttributeError: 'NoneType' object has no attribute 'hostname'``, which Celery treats as
unrecoverable: the worker exits (kombu issues 582 and 970 show the same path). ``RedisTransport``'s channel keeps
the connection details it was opened with and lends them back for exactly that moment, so the close completes (or
fails with a connection error, which Celery handles by reconnecting) and the worker carries on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic

import redis
from django.conf import settings
from kombu.transport import filesystem
from kombu.transport import redis as redis_transport
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger("console.broker")

QUARANTINE = "quarantine"


def quarantine_folder(data_folder_in: str | os.PathLike) -> Path:
    """Where unreadable messages of a queue folder are kept: a sibling folder named ``quarantine``."""
    return Path(data_folder_in).parent / QUARANTINE


def quarantined_count(data_folder_in: str | os.PathLike) -> int:
    folder = quarantine_folder(data_folder_in)
    try:
        return sum(1 for entry in os.scandir(folder) if entry.is_file())
    except FileNotFoundError:
        return 0


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        partial = final + ".tmp"  # "<n>_<uuid>.<queue>.msg.tmp" never matches "<queue>.msg" in _get
        try:
            with open(partial, "wb") as f:
                f.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.remove(partial)
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory: {exc}") from exc

    def _get(self, queue):
        wanted = f"{queue}.msg"
        for filename in sorted(os.listdir(self.data_folder_in)):
            if filename.partition(".")[2] != wanted:
                continue
            source = os.path.join(self.data_folder_in, filename)
            claimed = os.path.join(self.data_folder_in, f".{filename}.{os.getpid()}.reading")
            try:
                os.replace(source, claimed)  # whoever renames it first owns it
            except OSError:
                continue
            try:
                with open(claimed, "rb") as f:
                    payload = f.read()
            except OSError as exc:
                raise filesystem.ChannelError(f"Cannot read file {filename!r} from queue.") from exc
            try:
                message = loads(bytes_to_str(payload))
                if not isinstance(message, dict):
                    raise ValueError("a message is a JSON object")
            except (ValueError, UnicodeDecodeError) as exc:
                self._set_aside(claimed, filename, exc)
                continue
            self._done(claimed, filename)
            return message
        raise Empty()

    def _done(self, claimed: str, filename: str) -> None:
        if self.store_processed:
            os.replace(claimed, os.path.join(self.processed_folder, filename))
        else:
            os.remove(claimed)

    def _set_aside(self, claimed: str, filename: str, exc: Exception) -> None:
        folder = quarantine_folder(self.data_folder_in)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            os.replace(claimed, folder / filename)
            where = f"kept in {folder}"
        except OSError as move_exc:  # a full or read-only disk: drop it rather than read it again forever
            with contextlib.suppress(OSError):
                os.remove(claimed)
            where = f"dropped (could not keep it: {move_exc})"
        log.warning("Unreadable broker message %s set aside (%s); %s", filename, exc, where)


class Transport(filesystem.Transport):
    Channel = Channel


class RedisChannel(redis_transport.Channel):
    def __init__(self, connection, *args, **kwargs):
        self._conninfo = connection.client  # the kombu Connection this channel was opened for
        super().__init__(connection, *args, **kwargs)

    def _connparams(self, asynchronous=False):
        transport = self.connection
        if transport.client is not None or self._conninfo is None:
            return super()._connparams(asynchronous=asynchronous)
        transport.client = self._conninfo  # detached while this channel closes: lend it back for the call
        try:
            return super()._connparams(asynchronous=asynchronous)
        finally:
            transport.client = None


class RedisTransport(redis_transport.Transport):
    Channel = RedisChannel


# ---- what is waiting: queue depths (the claim tick and the health checks read them) ---------------------

QUEUES = ("sync", "default", "checkins")
BROKER_TIMEOUT = 0.5  # seconds: a broker that does not answer by then is down for this request
# kombu's Redis transport keeps priorities 3, 6 and 9 of a queue in separate lists (priority 0 is the queue key).
_REDIS_PRIORITY_SEP = "\x06\x16"
_REDIS_PRIORITIES = (3, 6, 9)


def is_redis(url: str) -> bool:
    return url.startswith(("redis://", "rediss://"))


def redis_client():
    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT
    )


def filesystem_queue_dir() -> Path:
    options = getattr(settings, "CELERY_BROKER_TRANSPORT_OPTIONS", {}) or {}
    return Path(options.get("data_folder_in") or settings.DATA_DIR / "broker" / "queue")


def queue_depths() -> dict[str, int]:
    """Messages waiting per queue: Redis list lengths, or message files of the filesystem broker."""
    if is_redis(settings.CELERY_BROKER_URL):
        client = redis_client()
        try:
            pipe = client.pipeline(transaction=False)
            for queue in QUEUES:
                pipe.llen(queue)
                for priority in _REDIS_PRIORITIES:
                    pipe.llen(f"{queue}{_REDIS_PRIORITY_SEP}{priority}")
            lengths = pipe.execute()
        finally:
            client.close()
        step = 1 + len(_REDIS_PRIORITIES)
        return {queue: sum(lengths[i * step : (i + 1) * step]) for i, queue in enumerate(QUEUES)}
    folder = filesystem_queue_dir()
    return {queue: len(list(folder.glob(f"*.{queue}.msg"))) if folder.is_dir() else 0 for queue in QUEUES}
