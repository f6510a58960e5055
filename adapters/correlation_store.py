"""The rule engine's correlation state in Redis, written incrementally.

``core.incident_groups.storage_delta`` says which parts of the state changed in a batch;
this module turns that into Redis commands on a pipeline the caller executes as one
``MULTI``/``EXEC`` (together with the write-ahead record of the batch's effects), so the
stored state is never half a batch. Layout under the store's prefix:

* ``rules:state2:meta``: silences, maintenance windows, duplicate counter (JSON)
* ``rules:state2:groups``: hash, group key -> incident group without its signals
* ``rules:state2:signals:<group key>``: hash, fingerprint -> tracked signal
* ``rules:state2:flaps`` / ``rules:state2:tombstones``: hashes by fingerprint

The earlier layout (the whole state as one JSON value under ``rules:state``) is read once
and converted, so an upgrade continues the same incidents.
"""

from __future__ import annotations

import logging
from typing import Any

from adapters.redis import RedisStore
from core.errors import TemporaryError
from core.incident_groups import CorrelationState, PartsDelta, StateDelta, state_from_parts, storage_delta

log = logging.getLogger(__name__)

LEGACY_KEY = "rules:state"
META = "rules:state2:meta"
GROUPS = "rules:state2:groups"
SIGNALS = "rules:state2:signals:"
FLAPS = "rules:state2:flaps"
TOMBSTONES = "rules:state2:tombstones"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _texts(mapping: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in mapping.items()}


class CorrelationStore:
    def __init__(self, redis: RedisStore) -> None:
        self._redis = redis

    def _key(self, name: str) -> str:
        return self._redis.key(name)

    async def load(self) -> CorrelationState | None:
        """The stored state, or None when nothing was stored yet."""
        client = self._redis.client
        try:
            meta = await client.get(self._key(META))
            if meta is None:
                return await self._convert_legacy()
            headers = _texts(await client.hgetall(self._key(GROUPS)))
            pipe = client.pipeline(transaction=False)
            keys = list(headers)
            for key in keys:
                pipe.hgetall(self._key(SIGNALS + key))
            pipe.hgetall(self._key(FLAPS))
            pipe.hgetall(self._key(TOMBSTONES))
            answers = await pipe.execute()
        except Exception as e:  # noqa: BLE001 - any Redis failure: the engine cannot start yet
            raise TemporaryError(f"Redis: cannot load correlation state: {e}") from e
        signals = {key: _texts(answer) for key, answer in zip(keys, answers, strict=False)}
        return state_from_parts(_text(meta), headers, signals, _texts(answers[-2]), _texts(answers[-1]))

    async def _convert_legacy(self) -> CorrelationState | None:
        saved = await self._redis.get_json(LEGACY_KEY)
        if not saved:
            return None
        state = CorrelationState.from_storage(saved)
        pipe = self._redis.client.pipeline(transaction=True)
        self.stage(pipe, storage_delta(None, state))
        pipe.delete(self._key(LEGACY_KEY))
        await pipe.execute()
        log.info("converted the correlation state to the incremental layout (%d groups)", len(state.groups))
        return state

    def _stage_parts(self, pipe: Any, name: str, delta: PartsDelta) -> None:
        if delta.changed:
            pipe.hset(self._key(name), mapping=delta.changed)
        if delta.removed:
            pipe.hdel(self._key(name), *delta.removed)

    def stage(self, pipe: Any, delta: StateDelta) -> None:
        """Queue the writes of ``delta`` on ``pipe`` (the caller executes it)."""
        if delta.meta is not None:
            pipe.set(self._key(META), delta.meta)
        self._stage_parts(pipe, GROUPS, delta.groups)
        for key in delta.dropped_groups:
            pipe.delete(self._key(SIGNALS + key))
        for key, signals in delta.signals.items():
            self._stage_parts(pipe, SIGNALS + key, signals)
        self._stage_parts(pipe, FLAPS, delta.flaps)
        self._stage_parts(pipe, TOMBSTONES, delta.tombstones)

    async def clear(self) -> None:
        client = self._redis.client
        headers = await client.hkeys(self._key(GROUPS))
        keys = [self._key(n) for n in (META, GROUPS, FLAPS, TOMBSTONES, LEGACY_KEY)]
        keys += [self._key(SIGNALS + _text(k)) for k in headers]
        await client.delete(*keys)
