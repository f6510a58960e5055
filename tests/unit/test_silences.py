from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.errors import InputError
from core.silences import MaintenanceWindow, Silence, active_maintenance, active_silence, parse_silence_command

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def silence(*matchers: str, start: float = -60, end: float = 3600, sid: str = "s1") -> Silence:
    return Silence(
        id=sid,
        matchers=matchers,
        starts_at=NOW + timedelta(seconds=start),
        ends_at=NOW + timedelta(seconds=end),
        created_by="alice",
        comment="deploying",
    )


@pytest.mark.parametrize(
    ("matchers", "labels", "offset", "hit"),
    [
        pytest.param(('alertname="X"',), {"alertname": "X"}, 0, True, id="equal-matcher-matches"),
        pytest.param(('alertname="X"',), {"alertname": "Y"}, 0, False, id="other-value-does-not-match"),
        pytest.param(('namespace=~"prod-.*"', 'team!="db"'), {"namespace": "prod-eu"}, 0, True, id="regex-and-ne"),
        pytest.param(('namespace=~"prod-.*"',), {"namespace": "xprod-eu"}, 0, False, id="regex-is-anchored"),
        pytest.param(('alertname="X"',), {"alertname": "X"}, 3600, False, id="expired-silence-never-matches"),
        pytest.param(('alertname="X"',), {"alertname": "X"}, -120, False, id="future-silence-does-not-match-yet"),
    ],
)
def test_active_silence_matches_labels_only_inside_its_time_range(
    matchers: tuple[str, ...], labels: dict[str, str], offset: float, hit: bool
) -> None:
    found = active_silence(labels, [silence(*matchers)], NOW + timedelta(seconds=offset))
    assert (found is not None) is hit


def test_active_silence_picks_the_earliest_ending_of_several_matches() -> None:
    long = silence('alertname="X"', end=7200, sid="long")
    short = silence('alertname="X"', end=600, sid="short")
    assert active_silence({"alertname": "X"}, [long, short], NOW) == short


@pytest.mark.parametrize(
    ("namespace", "offset", "hit"),
    [
        pytest.param("payments-eu", 0, True, id="glob-matches-namespace"),
        pytest.param("shop", 0, False, id="other-namespace-not-covered"),
        pytest.param(None, 0, False, id="cluster-scoped-signal-not-covered"),
        pytest.param("payments-eu", 7200, False, id="window-over"),
    ],
)
def test_maintenance_window_covers_namespace_globs_during_its_range(
    namespace: str | None, offset: float, hit: bool
) -> None:
    window = MaintenanceWindow(
        id="m1", namespaces=("payments-*",), starts_at=NOW, ends_at=NOW + timedelta(hours=1), created_by="bob"
    )
    assert (active_maintenance(namespace, [window], NOW + timedelta(seconds=offset)) is not None) is hit


@pytest.mark.parametrize(
    ("text", "matchers", "seconds", "comment"),
    [
        pytest.param(
            'alertname="X",namespace=prod 2h', ('alertname="X"', 'namespace="prod"'), 7200, "", id="brief-example"
        ),
        pytest.param(
            '/silence {alertname="Kube X", pod=~"api-.*"} 30m rollout in progress',
            ('alertname="Kube X"', 'pod=~"api-.*"'),
            1800,
            "rollout in progress",
            id="braces-spaces-in-quotes-and-comment",
        ),
        pytest.param("namespace=prod team=db 1d", ('namespace="prod"', 'team="db"'), 86400, "", id="space-separated"),
    ],
)
def test_parse_silence_command_builds_a_silence_from_now(
    text: str, matchers: tuple[str, ...], seconds: int, comment: str
) -> None:
    found = parse_silence_command(text, NOW, "alice")
    assert found.matchers == matchers
    assert (found.starts_at, found.ends_at) == (NOW, NOW + timedelta(seconds=seconds))
    assert (found.created_by, found.comment) == ("alice", comment)
    assert found.id.startswith("sil-") and found == parse_silence_command(text, NOW, "alice")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        pytest.param('alertname="X"', "missing duration", id="no-duration"),
        pytest.param("2h", "missing matchers", id="no-matchers"),
        pytest.param('alertname="X" 0s', "must be positive", id="zero-duration"),
        pytest.param('alertname="X" 90d', "longer than the maximum", id="too-long"),
        pytest.param('alertname=~"(" 1h', "invalid regex", id="bad-regex"),
        pytest.param("alertname 1h", "invalid matcher", id="not-a-matcher"),
        pytest.param('team!="db" 1h', "would also match", id="matches-everything"),
        pytest.param('alertname="X 1h', "unterminated quote", id="unterminated-quote"),
    ],
)
def test_parse_silence_command_rejects_bad_input_with_a_clear_error(text: str, message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        parse_silence_command(text, NOW, "alice")
    assert "usage" in str(caught.value) or "positive matcher" in str(caught.value) or "maximum" in str(caught.value)


def test_silence_that_ends_before_it_starts_is_refused() -> None:
    with pytest.raises(ValueError, match="must end after it starts"):
        silence('alertname="X"', start=10, end=5)
