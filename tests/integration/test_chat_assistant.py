"""A question typed in Telegram is answered by the real assistant from read-only tool results.

The dispatcher builds the assistant the way the ``aiops-chat`` actor does (``load_assistant``:
``LlmClient`` from the settings, the read-only ``aiops mcp-server`` subprocess started on the
first question); the model is the loopback Anthropic server scripted to call ``list_pods``
and to answer from the ``tool_result`` it is sent; the sandbox is the cluster. The follow-up
question carries the first turn as history.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from actors.chat_dispatch import ChatDispatcher, Direct
from adapters.sandbox import BackgroundSandbox, parse_scenario
from adapters.telegram import TelegramChannel, handle_webhook
from config.chat import chat_from_text
from config.policy import policy_from_text
from config.settings import Settings
from core.chat import ChatEvent
from tests.helpers import wait_for
from tests.servers.anthropic_server import AnthropicServer, Reply, result_text, tool_results
from tests.servers.telegram_server import TelegramApiServer, text_update, webhook_headers

pytestmark = pytest.mark.integration

API_KEY = "sk-ant-loopback-chat-0123456789"
TG_TOKEN = "7000002:AAloopbackASSISTANTtokenONLY000000"
TG_SECRET = "tg-assistant-secret-77"
CHAT = -100700
SCENARIO = """
name: chat-assistant
namespaces: [production]
restart_interval_seconds: 0.2
workloads:
  - {name: api, namespace: production, replicas: 1, behaviour: crashloop, logs: ["panic: boom"]}
  - {name: web, namespace: production, replicas: 1}
"""


@pytest.fixture
def cluster() -> Iterator[BackgroundSandbox]:
    sb = BackgroundSandbox(parse_scenario(SCENARIO), bookmark_interval=0.5).start()
    yield sb
    sb.stop()


def failing_pods(body: dict[str, Any]) -> Reply:
    """A model that read the list_pods result and names the pods that restart, from it only."""
    (result,) = tool_results(body)
    data = json.loads(result_text(result).split("\n", 1)[1])
    failing = [p["name"] for p in data["pods"] if p["restarts"] or p["reasons"]]
    return Reply.text(f"Failing in production: {', '.join(failing)}.")


@pytest_asyncio.fixture
async def parts(
    cluster: BackgroundSandbox, database_url: str, redis_url: str, redis_prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[ChatDispatcher, AnthropicServer, TelegramApiServer]]:
    with AnthropicServer() as llm, TelegramApiServer(TG_TOKEN) as telegram:
        settings = Settings(
            database_url=database_url,
            redis_url=redis_url,
            redis_prefix=redis_prefix,
            data_dir=tmp_path,
            kubeconfig=str(cluster.kubeconfig_path),
            anthropic_api_key=API_KEY,
            anthropic_base_url=llm.url,
            llm_timeout_seconds=30,
            telegram_bot_token=TG_TOKEN,
            dev_mode=True,
        )
        chat = chat_from_text(
            f"chat:\n  telegram: {{enabled: true, api_url: '{telegram.api_url}', allowed_chats: [{CHAT}]}}\n"
            "  console: {enabled: false}\n  routes: []\n  default_targets: []\n"
        )
        dispatcher = ChatDispatcher(
            settings,
            coordinator=Direct(object()),
            engine=Direct(object()),
            chat=chat,
            policy=policy_from_text("policy:\n  roles:\n    - {identity: 'telegram:333', role: viewer}\n"),
            channels={"telegram": TelegramChannel(TG_TOKEN, api_url=telegram.api_url)},
            answer_timeout=120.0,
        )
        try:
            yield dispatcher, llm, telegram
        finally:
            await dispatcher.close()


def event(dispatcher: ChatDispatcher, update: int, text: str) -> ChatEvent:
    config = chat_from_text(f"chat:\n  telegram: {{enabled: true, allowed_chats: [{CHAT}]}}\n  default_targets: []\n")
    found = handle_webhook(
        text_update(update, CHAT, 333, text), webhook_headers(TG_SECRET), secret=TG_SECRET, config=config.telegram
    ).event
    assert found is not None
    return found


async def test_a_question_in_chat_is_answered_from_read_only_tool_results_with_history(
    cluster: BackgroundSandbox, parts: tuple[ChatDispatcher, AnthropicServer, TelegramApiServer]
) -> None:
    dispatcher, llm, telegram = parts

    def restarted() -> str | None:
        return next(
            (
                p["metadata"]["name"]
                for p in cluster.objects("Pod", "production")
                if p["metadata"]["name"].startswith("api-")
                and any(s.get("restartCount", 0) > 0 for s in p.get("status", {}).get("containerStatuses") or [])
            ),
            None,
        )

    pod = await wait_for(restarted, timeout=30, message="a restarting api pod")
    llm.script(Reply.tool_use("list_pods", {"namespace": "production"}), Reply.responding(failing_pods))

    first = await dispatcher.handle(event(dispatcher, 1, "which pods are failing in production?"))
    assert first["outcome"] == "done", first
    assert pod in first["reply"] and "(from: list_pods)" in first["reply"]
    sent = [c.params["text"] for c in telegram.method_calls("sendMessage")]
    assert any(pod in text for text in sent)

    llm.script(Reply.text("It restarts because its process panics at start."))
    second = await dispatcher.handle(event(dispatcher, 2, "and why is it restarting?"))
    assert "panics" in second["reply"]
    body = llm.bodies()[-1]
    contents = json.dumps(body["messages"])
    assert "which pods are failing in production?" in contents and pod in contents
