"""Log analysis: categories, exceptions with their stacks, hosts, clustering and bad input."""

from __future__ import annotations

import pytest

from core.rca.logs import LogCategory, analyze, categorize, first_error_line, hosts_in, template_of


@pytest.mark.parametrize(
    ("line", "category"),
    [
        pytest.param("java.lang.OutOfMemoryError: Java heap space", LogCategory.OOM, id="java-oom"),
        pytest.param("Killed process 4242 (python) total-vm:2048kB", LogCategory.OOM, id="kernel-oom"),
        pytest.param("fatal error: runtime: out of memory", LogCategory.OOM, id="go-oom"),
        pytest.param("MemoryError", LogCategory.OOM, id="python-memory-error"),
        pytest.param("dial tcp 10.0.0.5:5432: connect: connection refused", LogCategory.CONNECTION, id="go-refused"),
        pytest.param("Error: connect ECONNREFUSED 127.0.0.1:6379", LogCategory.CONNECTION, id="node-refused"),
        pytest.param("dial tcp: lookup db on 10.96.0.10:53: no such host", LogCategory.CONNECTION, id="go-dns"),
        pytest.param("socket.gaierror: [Errno -2] Name or service not known", LogCategory.CONNECTION, id="py-dns"),
        pytest.param("getaddrinfo ENOTFOUND auth.internal", LogCategory.CONNECTION, id="node-dns"),
        pytest.param("dial tcp 10.1.2.3:443: i/o timeout", LogCategory.CONNECTION, id="dial-timeout"),
        pytest.param("request to payments timed out after 30s", LogCategory.TIMEOUT, id="timeout"),
        pytest.param("context deadline exceeded", LogCategory.TIMEOUT, id="deadline"),
        pytest.param("environment variable DATABASE_URL is not set", LogCategory.MISSING_CONFIG, id="env-not-set"),
        pytest.param("KeyError: 'DATABASE_URL'", LogCategory.MISSING_CONFIG, id="keyerror-env"),
        pytest.param("open /etc/app/config.yaml: no such file or directory", LogCategory.MISSING_FILE, id="enoent"),
        pytest.param("PermissionError: [Errno 13] Permission denied: '/data'", LogCategory.PERMISSION, id="perm"),
        pytest.param("exec /app/server: exec format error", LogCategory.BAD_COMMAND, id="exec-format"),
        pytest.param("ValueError: invalid literal for int()", LogCategory.EXCEPTION, id="py-exception"),
        pytest.param("panic: assignment to entry in nil map", LogCategory.EXCEPTION, id="go-panic"),
        pytest.param('level=error msg="boom"', LogCategory.ERROR, id="logfmt-error"),
        pytest.param('{"level":"error","msg":"x"}', LogCategory.ERROR, id="json-error"),
        pytest.param("2026-11-05 ERROR something broke", LogCategory.ERROR, id="plain-error"),
        pytest.param("INFO GET /healthz 200", None, id="info-line"),
        pytest.param("retrieved 0 errors", None, id="word-error-lowercase"),
    ],
)
def test_lines_are_categorised(line: str, category: LogCategory | None) -> None:
    assert categorize(line) is category


@pytest.mark.parametrize(
    ("log", "exception"),
    [
        pytest.param(
            "Traceback (most recent call last):\n  File \"a.py\", line 1, in <module>\n    x()\n"
            "ZeroDivisionError: division by zero\n",
            "ZeroDivisionError: division by zero",
            id="python-traceback",
        ),
        pytest.param(
            "Traceback (most recent call last):\n  File \"a.py\", line 1\nKeyError: 'a'\n\nDuring handling of the "
            "above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"a.py\"\n"
            "RuntimeError: config broken\n",
            "RuntimeError: config broken",
            id="python-chained",
        ),
        pytest.param(
            'Exception in thread "main" java.lang.RuntimeException: wrapper\n\tat A.main(A.java:1)\n'
            "Caused by: java.io.FileNotFoundException: /cfg (No such file or directory)\n\tat B.x(B.java:2)\n",
            "java.io.FileNotFoundException: /cfg (No such file or directory)",
            id="java-deepest-cause",
        ),
        pytest.param(
            "panic: runtime error: index out of range [3] with length 3\n\ngoroutine 1 [running]:\nmain.main()\n",
            "panic: runtime error: index out of range [3] with length 3",
            id="go-panic",
        ),
        pytest.param(
            "Error: Cannot find module 'express'\n    at Module._resolveFilename (node:internal)\n",
            "Error: Cannot find module 'express'",
            id="node-error-with-frames",
        ),
        pytest.param("Error: just a message without frames\n", None, id="node-error-without-frames"),
    ],
)
def test_the_exception_line_is_read_with_its_stack(log: str, exception: str | None) -> None:
    assert analyze(log).exception == exception


@pytest.mark.parametrize(
    ("line", "hosts"),
    [
        pytest.param("dial tcp: lookup redis-master on 10.96.0.10:53: no such host", ["redis-master"], id="go-dns"),
        pytest.param("dial tcp 10.0.0.5:5432: connect: connection refused", ["10.0.0.5:5432"], id="go-refused"),
        pytest.param("connect ECONNREFUSED 127.0.0.1:6379", ["127.0.0.1:6379"], id="node"),
        pytest.param("getaddrinfo ENOTFOUND auth.internal", ["auth.internal"], id="node-dns"),
        pytest.param(
            "HTTPConnectionPool(host='auth-svc', port=8080): Max retries exceeded with url: /",
            ["auth-svc:8080"],
            id="python-requests",
        ),
        pytest.param('could not translate host name "db" to address', ["db"], id="psycopg-dns"),
        pytest.param("java.net.UnknownHostException: kafka-0.kafka", ["kafka-0.kafka"], id="java-dns"),
        pytest.param("could not connect to server: Connection refused", [], id="no-host"),
    ],
)
def test_hosts_named_by_connection_errors_are_extracted(line: str, hosts: list[str]) -> None:
    assert hosts_in(line) == hosts


def test_similar_lines_cluster_into_one_counted_signature() -> None:
    log = "\n".join(
        f"2026-11-05T10:00:{i:02d}Z ERROR request {i} failed for user 3f2b8c1e-0000-4000-8000-00000000000{i % 9} "
        f"from 10.0.0.{i}"
        for i in range(30)
    )
    summary = analyze(log)
    assert len(summary.signatures) == 1
    assert summary.signatures[0].count == 30
    assert "<uuid>" in summary.signatures[0].template and "<ip>" in summary.signatures[0].template


def test_template_replaces_volatile_parts_only() -> None:
    assert template_of("retry 3 of 10 at 12:00:01 to 10.0.0.1:5432 id=0xdeadbeef") == (
        "retry <n> of <n> at <ts> to <ip> id=<hex>"
    )


def test_first_error_line_reads_from_the_start_and_skips_info() -> None:
    log = "INFO boot\nWARN slow\nERROR first failure\nERROR second failure\n"
    assert first_error_line(log) == "ERROR first failure"
    assert analyze(log).first_error == "ERROR first failure"
    assert analyze(log).last_error == "ERROR second failure"


def test_example_lines_are_redacted() -> None:
    summary = analyze("ERROR login failed password=hunter2secret for postgres://u:Pa55@db/x\n")
    assert "hunter2secret" not in summary.signatures[0].example
    assert "Pa55" not in summary.signatures[0].example


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("", id="empty"),
        pytest.param(None, id="none"),
        pytest.param(b"", id="empty-bytes"),
        pytest.param(bytes(range(256)) * 400, id="binary"),
        pytest.param("\x00\x01\x02" * 1000, id="nul-text"),
        pytest.param("\x1b[31mERROR\x1b[0m coloured", id="ansi"),
        pytest.param("A" * 3_000_000, id="one-gigantic-line"),
        pytest.param(12345, id="not-text"),
    ],
)
def test_bad_input_never_raises(raw: object) -> None:
    summary = analyze(raw)  # type: ignore[arg-type]
    first_error_line(raw)  # type: ignore[arg-type]
    assert summary.analysed_lines <= 5000


def test_binary_logs_are_flagged() -> None:
    assert analyze(bytes(range(256)) * 100).binary is True
    assert analyze(b"ERROR plain text\n").binary is False


def test_gigantic_logs_are_bounded_and_keep_the_tail() -> None:
    noise = "INFO all good\n" * 200_000
    summary = analyze(noise + "panic: the end\n", max_bytes=100_000, max_lines=1_000)
    assert summary.truncated is True
    assert summary.analysed_lines <= 1_000
    assert summary.total_lines == 200_001
    assert summary.exception == "panic: the end"


def test_ansi_colours_are_stripped_before_matching() -> None:
    assert analyze("\x1b[31mERROR\x1b[0m disk full\n").first_error == "ERROR disk full"
