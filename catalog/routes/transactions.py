"""Multi-table transactions: ``POST /v1/transactions/commit`` (all changes apply or none)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from catalog.models import CommitTransactionRequest
from catalog.routes.deps import Ctx

router = APIRouter(tags=["transactions"])


@router.post("/v1/transactions/commit", status_code=204)
def commit_transaction(ctx: Ctx, req: CommitTransactionRequest) -> Response:
    """Commit changes to several tables atomically: all apply or none."""
    ctx.service.commit_transaction([c.model_dump(by_alias=True) for c in req.table_changes])
    return Response(status_code=204)
