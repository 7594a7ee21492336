"""Keys: API keys with their scope, use and tokens today against their quota; create (the token is shown
once) and revoke."""

from __future__ import annotations

from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.widgets import DataTable, Static

from appliance.client.errors import ApiError
from tui import format as fmt
from tui.screens.base import ApplianceScreen
from tui.widgets.modals import ConfirmModal, FormField, FormModal, SecretModal
from tui.widgets.tables import selected_key, sync_rows

Json = dict[str, Any]


def _tokens(today: Json | None) -> str:
    """Tokens used today, against the quota when there is one (red once it is spent)."""
    if today is None:
        return "—"
    used, quota = int(today.get("tokens") or 0), today.get("quota")
    if quota is None:
        return f"{used:,}"
    return f"[red]{used:,} / {quota:,}[/]" if used >= quota else f"{used:,} / {quota:,}"


class KeysScreen(ApplianceScreen):
    MODE = "keys"
    CSS_PATH = "keys.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        *ApplianceScreen.BINDINGS,
        Binding("n", "create_key", "New key"),
        Binding("d", "revoke_key", "Revoke"),
    ]

    class Listed(Message):
        def __init__(self, keys: list[Json], today: dict[str, Json]) -> None:
            super().__init__()
            self.keys = keys
            self.today = today  # key name -> {"tokens": used today (UTC), "quota": daily quota or None}

    class Created(Message):
        """The daemon created a key; `token` exists nowhere else."""

        def __init__(self, name: str, token: str) -> None:
            super().__init__()
            self.name, self.token = name, token

    def body(self) -> ComposeResult:
        yield Static("Inference keys call /v1; admin keys also manage the appliance. Tokens are shown once.",
                     id="keys-help")
        yield DataTable(id="keys", cursor_type="row", zebra_stripes=True)

    def on_mount(self) -> None:
        super().on_mount()
        self.query_one("#keys", DataTable).add_columns("name", "scope", "created", "last used", "tokens today",
                                                       "state")

    async def load(self) -> None:
        keys = await self.api.keys()
        try:
            today = (await self.api.usage()).get("today", {})
        except ApiError:  # a daemon without usage accounting (older): the keys still list
            today = {}
        self.post_message(self.Listed(keys, today))

    @on(Listed)
    def show_keys(self, event: Listed) -> None:
        now = self.now()
        rows = []
        for k in event.keys:
            state = f"[red]revoked {fmt.ago(k['revoked_at'], now)}[/]" if k.get("revoked_at") else "[green]active[/]"
            rows.append((k["name"], [k["name"], k["scope"], fmt.ago(k.get("created_at"), now),
                                     fmt.ago(k.get("last_used_at"), now), _tokens(event.today.get(k["name"])),
                                     state]))
        sync_rows(self.query_one("#keys", DataTable), rows)

    def selected(self) -> str | None:
        return selected_key(self.query_one("#keys", DataTable))

    def action_create_key(self) -> None:
        fields = [
            FormField("name", "Name", placeholder="app1", hint="Letters, digits, '-', '_' or '.'"),
            FormField("scope", "Scope", "inference", options=[("inference (/v1 only)", "inference"),
                                                              ("admin (everything)", "admin")]),
        ]
        self.app.push_screen(FormModal("Create an API key", fields, "Create"), self._create)

    def _create(self, values: dict[str, Any] | None) -> None:
        if not values:
            return

        async def create() -> None:
            created = await self.guard(self.api.create_key(values["name"], values["scope"]))
            if created is not None:
                self.post_message(self.Created(created["key"]["name"], created["token"]))
                await self.guard(self.load())

        self.run_worker(create(), group="act", exit_on_error=False)

    @on(Created)
    def show_token(self, event: Created) -> None:
        self.app.push_screen(SecretModal(f"Key {event.name!r} created", event.token))

    def action_revoke_key(self) -> None:
        name = self.selected()
        if name is None:
            return

        def done(yes: bool | None) -> None:
            if yes:
                self.act(self.api.revoke_key(name), f"Revoked {name}")

        self.app.push_screen(ConfirmModal(f"Revoke key {name!r}? Apps using it get 401 at once.", "Revoke"), done)
