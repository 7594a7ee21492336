"""The catalogue's calls for trials of a candidate on a live deployment: its shadow, its canary and the live
watch (`/api/v1/deployments/{name}/trials`, `shadow`, `canary`). `TrialCalls` extends `calls.Calls`; both clients
serve it, so each call is still written once for the sync and the async transport."""

from __future__ import annotations

import httpx

from appliance.client.calls import CHANGE_TIMEOUT, Calls, Json, R, S, _q


def read_nothing(response: httpx.Response) -> None:
    """For a 204: no body to decode."""
    return None


class TrialCalls(Calls[R, S]):
    def trials(self, name: str) -> R:
        """The deployment's TrialsView: its shadow and the shadow's figures, its canary, the live watch's latest
        verdict (both sides' figures and each rule's check), and whether a watch is running."""
        return self._call("GET", f"/api/v1/deployments/{_q(name)}/trials")

    def set_shadow(self, name: str, candidate: str, sample_rate: float = 0.1) -> R:
        """`candidate` (another deployment) also answers `sample_rate` of the requests, in the background."""
        body = {"candidate": candidate, "sample_rate": sample_rate}
        return self._call("PUT", f"/api/v1/deployments/{_q(name)}/shadow", json=body)

    def clear_shadow(self, name: str) -> R:
        """Stop shadowing (its pairs go with it); gives None."""
        return self._call("DELETE", f"/api/v1/deployments/{_q(name)}/shadow", read=read_nothing)

    def shadow_pairs(self, name: str, limit: int = 20) -> R:
        """The pairs the shadow agreed with least, worst first (redacted like the deployment's capture)."""
        return self._call("GET", f"/api/v1/deployments/{_q(name)}/shadow/pairs", params={"limit": limit})

    def start_canary(self, name: str, candidate: str, weight: float = 0.05) -> R:
        """Send a sticky share (`weight`) of the keys to `candidate`, watched against the live side."""
        body = {"candidate": candidate, "weight": weight}
        return self._call("POST", f"/api/v1/deployments/{_q(name)}/canary", json=body)

    def promote_canary(self, name: str, body: Json | None = None) -> R:
        """Serve the candidate's model under `name` (a switch; `body`, a switch request, overrides it), then end
        the canary: the SwitchResult."""
        return self._call("POST", f"/api/v1/deployments/{_q(name)}/canary/promote", json=body,
                          timeout=CHANGE_TIMEOUT)

    def abort_canary(self, name: str, reason: str = "") -> R:
        """Every key back on the live version at once: the TrialsView after."""
        return self._call("POST", f"/api/v1/deployments/{_q(name)}/canary/abort", json={"reason": reason})

