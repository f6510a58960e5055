"""Serve app ``chat``: the Telegram and Slack webhooks.

Each handler is verify -> parse -> hand off -> answer: the body is read with a bound, the
secret token (Telegram) or the request signature and timestamp (Slack) is checked by the
adapters, the update becomes a ``ChatEvent``, and the event is handed to the ``aiops-chat``
actor *without waiting* for it. The webhook is answered within the request (Slack wants
an answer in 3 s, Telegram redelivers on anything but 2xx); the reply arrives in chat when
the command has run. Bad credentials answer 401 and nothing is handed on; malformed
bodies 400, huge ones 413; updates we do not act on (stickers, files, edits, chats not in
``chat.yaml``) answer 200 with ``ignored``/``refused`` so the platforms stop resending them.

Constructing the app also starts ``aiops-notifier`` (incidents and approvals into chat).
"""

# No "from __future__ import annotations": FastAPI must see real types on route methods.

import logging
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from ray import serve

from actors import remote
from adapters.chat_channel import InboundResult
from adapters.metrics import IngressMetrics
from adapters.slack import MAX_REQUEST_BYTES, SlackVerifier, handle_events, handle_interactions
from adapters.telegram import MAX_UPDATE_BYTES, handle_webhook
from config.chat import ChatConfig, load_chat
from config.settings import Settings
from core.errors import AiopsError, NotFound
from deployments.http import error_response, errors, read_body, replica_metrics, request_body

log = logging.getLogger(__name__)
api = FastAPI(title="ray-aiops chat", version="0.1.0")

# The bodies as the platforms send them; the adapters check every field they use.
_TELEGRAM_UPDATE = {
    "type": "object",
    "description": "a Telegram Update",
    "properties": {"update_id": {"type": "integer"}},
}
_SLACK_EVENT = {
    "type": "object",
    "description": "a Slack Events API request (event_callback or url_verification)",
    "properties": {"type": {"type": "string"}, "challenge": {"type": "string"}, "event": {"type": "object"}},
}
_SLACK_INTERACTION = {
    "type": "object",
    "description": "a Slack interaction: the JSON payload in a form field",
    "properties": {"payload": {"type": "string"}},
    "required": ["payload"],
}
_ANSWERS = errors(400, 401, 404, 413)


@serve.ingress(api)
class ChatIngressImpl:
    def __init__(self, settings: Settings | None = None) -> None:
        self._settings = settings or Settings.from_env()
        self._metrics = IngressMetrics()
        self._chat: ChatConfig = load_chat(self._settings.chat_file)
        self._slack = SlackVerifier(self._settings.secret("slack_signing_secret"))
        self._dispatcher: Any = remote.chat_dispatcher(self._settings)
        self._notifier: Any = remote.notifier(self._settings)
        self._notifier.start.remote()

    def _hand_off(self, result: InboundResult) -> JSONResponse:
        if result.event is not None:
            # Fire and forget: the dispatcher replies in chat; the webhook is answered now.
            self._dispatcher.handle.remote(result.event)
        return JSONResponse(result.body, status_code=result.status)

    async def _handle(
        self, request: Request, enabled: bool, what: str, limit: int, parse: Callable[[bytes], InboundResult]
    ) -> JSONResponse:
        try:
            if not enabled:
                raise NotFound(f"{what} is not enabled in the chat configuration")
            body = await read_body(request, limit)
            result = parse(body)
        except AiopsError as e:
            if not isinstance(e, NotFound):
                log.warning("%s webhook refused: %s", what, e)
            return self._counted(what, error_response(e))
        return self._counted(what, self._hand_off(result))

    def _counted(self, endpoint: str, response: JSONResponse) -> JSONResponse:
        self._metrics.webhook_requests.labels(endpoint=endpoint, status=str(response.status_code)).inc()
        return response

    def metrics_text(self) -> str:
        return replica_metrics(self._metrics.render())

    @api.post("/telegram", responses=_ANSWERS, openapi_extra=request_body(_TELEGRAM_UPDATE))
    async def telegram(self, request: Request) -> JSONResponse:
        secret = self._settings.secret("telegram_webhook_secret")
        return await self._handle(
            request,
            self._chat.telegram.enabled,
            "telegram",
            MAX_UPDATE_BYTES,
            lambda body: handle_webhook(
                body, dict(request.headers), secret=secret, config=self._chat.telegram, max_bytes=MAX_UPDATE_BYTES
            ),
        )

    @api.post("/slack/events", responses=_ANSWERS, openapi_extra=request_body(_SLACK_EVENT))
    async def slack_events(self, request: Request) -> JSONResponse:
        return await self._handle(
            request,
            self._chat.slack.enabled,
            "slack",
            MAX_REQUEST_BYTES,
            lambda body: handle_events(body, dict(request.headers), verifier=self._slack, config=self._chat.slack),
        )

    @api.post(
        "/slack/interactions",
        responses=_ANSWERS,
        openapi_extra=request_body(_SLACK_INTERACTION, "application/x-www-form-urlencoded"),
    )
    async def slack_interactions(self, request: Request) -> JSONResponse:
        return await self._handle(
            request,
            self._chat.slack.enabled,
            "slack",
            MAX_REQUEST_BYTES,
            lambda body: handle_interactions(
                body, dict(request.headers), verifier=self._slack, config=self._chat.slack
            ),
        )


# Applied as a call so type checkers keep seeing the plain class above.
ChatIngress: Any = serve.deployment(name="ChatIngress", ray_actor_options={"num_cpus": 0}, max_ongoing_requests=100)(
    ChatIngressImpl
)
app = ChatIngress.bind()


def build(settings: Settings | None = None) -> Any:
    return ChatIngress.bind(settings)
