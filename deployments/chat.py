"""Serve app ``chat``: Telegram and Slack webhooks. Not built yet: every route answers 501."""

from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse
from ray import serve

api = FastAPI(title="ray-aiops chat", version="0.1.0")

_NOT_YET = {"error": "NotImplemented", "message": "chat integration is not available in this version"}


@serve.ingress(api)
class ChatIngressImpl:
    @api.post("/telegram")
    async def telegram(self) -> JSONResponse:
        return JSONResponse(_NOT_YET, status_code=501)

    @api.post("/slack/events")
    async def slack_events(self) -> JSONResponse:
        return JSONResponse(_NOT_YET, status_code=501)

    @api.post("/slack/interactions")
    async def slack_interactions(self) -> JSONResponse:
        return JSONResponse(_NOT_YET, status_code=501)


# Applied as a call so type checkers keep seeing the plain class above.
ChatIngress: Any = serve.deployment(name="ChatIngress", ray_actor_options={"num_cpus": 0})(ChatIngressImpl)
app = ChatIngress.bind()


def build() -> Any:
    return ChatIngress.bind()
