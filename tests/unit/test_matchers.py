from __future__ import annotations

import pytest

from core.matchers import MatchOp, parse_matcher, parse_matchers


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        pytest.param('team="db"', {"team": "db"}, True, id="equal-matches"),
        pytest.param('team="db"', {"team": "web"}, False, id="equal-differs"),
        pytest.param("team=db", {"team": "db"}, True, id="unquoted-value"),
        pytest.param('team!="db"', {}, True, id="not-equal-absent-label"),
        pytest.param('pod=~"api-.*"', {"pod": "api-7d9f"}, True, id="regex-matches"),
        pytest.param('pod=~"api"', {"pod": "api-7d9f"}, False, id="regex-is-anchored"),
        pytest.param('pod!~"api-.*"', {"pod": "web-1"}, True, id="negative-regex"),
        pytest.param('team=~".+"', {}, False, id="regex-requires-present-label"),
        pytest.param('msg="a \\"quoted\\" word"', {"msg": 'a "quoted" word'}, True, id="escaped-quotes"),
        pytest.param("path='/a,b'", {"path": "/a,b"}, True, id="single-quotes-with-comma"),
    ],
)
def test_matcher_semantics_follow_alertmanager(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("team", id="no-operator"),
        pytest.param('="db"', id="no-name"),
        pytest.param('pod=~"(unclosed"', id="bad-regex"),
        pytest.param('te am="x"', id="space-in-name"),
    ],
)
def test_invalid_matcher_is_refused_with_the_text_quoted(text: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        parse_matcher(text)


def test_matcher_list_with_braces_and_commas_inside_quotes_parses_each() -> None:
    found = parse_matchers('{a="1,2", b=~"x|y", c!="z"}')
    assert [(m.name, m.op, m.value) for m in found] == [
        ("a", MatchOp.EQ, "1,2"),
        ("b", MatchOp.RE, "x|y"),
        ("c", MatchOp.NE, "z"),
    ]


def test_matcher_renders_back_to_its_syntax() -> None:
    assert str(parse_matcher('pod=~"api-.*"')) == 'pod=~"api-.*"'
