"""The console's routes, all under ``/console`` and none in the OpenAPI spec (it documents the API)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from gateway.webconsole import (
    delivery_pages,
    document_pages,
    events_page,
    overview_pages,
    register_pages,
    report_pages,
    signin_pages,
)

STATIC = Path(__file__).resolve().parent / "static"

router = APIRouter(prefix="/console", include_in_schema=False)
router.include_router(signin_pages.router)
router.add_api_route("", overview_pages.overview, methods=["GET"], response_class=HTMLResponse)
router.include_router(overview_pages.router)
router.include_router(document_pages.router)
router.include_router(delivery_pages.router)
router.include_router(events_page.router)
router.include_router(register_pages.router)
router.include_router(report_pages.router)
