"""POST /ingest keeps rights as the CLI does: what a body does not name stays, loosening needs rights_change."""

from __future__ import annotations

import json
from collections.abc import Callable

from ragtune.project import Project
from tests.server.conftest import ADMIN_TOKEN, EchoGenerator, Live

DOC = {"doc_id": "internal/margins.md", "text": "The gross margin target is 71 percent."}


def groups(project: Project) -> list[str]:
    row = project.store.db.execute("SELECT groups, may_train FROM documents WHERE doc_id = ?", (DOC["doc_id"],))
    return list(json.loads(row.fetchone()[0]))


def test_api_ingest_rights_stick(project: Project, serve: Callable[..., Live]) -> None:
    project.generator = EchoGenerator()
    live = serve(project, {"RAGTUNE_API_TOKEN": ADMIN_TOKEN})
    with live.client(ADMIN_TOKEN) as http:
        first = http.post("/ingest", json={"documents": [{**DOC, "groups": ["finance"], "may_train": False}]})
        assert first.status_code == 200 and first.json()["ok"], first.text
        again = http.post("/ingest", json={"documents": [{**DOC, "text": DOC["text"] + " Reviewed."}]})
        body = again.json()
        assert body["ok"] and body["updated"] == [DOC["doc_id"]] and body["rights_changed"] == []
        assert groups(project) == ["finance"]
        public = http.post("/ingest", json={"documents": [{**DOC, "groups": []}]}).json()
        assert not public["ok"] and "rights_change" in public["errors"][0]["message"]
        assert groups(project) == ["finance"]
        search = http.post("/search", json={"query": "gross margin target"}).json()
        assert search["results"] == []  # the admin caller holds no group: still hidden
        allowed = http.post("/ingest", json={"documents": [{**DOC, "groups": []}], "rights_change": True}).json()
        assert allowed["ok"] and allowed["rights_changed"][0]["changes"]["groups"] == {"old": ["finance"], "new": []}
        assert groups(project) == []
