"""reference/hub.py: what --checkpoint may name, and the Hub, without the network."""

import huggingface_hub
import httpx2
import pytest
from huggingface_hub.utils import OfflineModeIsEnabled, hf_raise_for_status

from reference.formats.hub import _explain_hub_error, download, resolve_checkpoint
from reference.errors import InputError

from helpers import one_line_error

REPO = "meta-llama/Meta-Llama-3-8B"


def test_resolve_checkpoint_returns_an_existing_directory(tiny_dir):
    assert resolve_checkpoint(str(tiny_dir)) == tiny_dir


def test_resolve_checkpoint_refuses_a_file(tiny_dir):
    with pytest.raises(InputError) as excinfo:
        resolve_checkpoint(str(tiny_dir / "params.json"))
    one_line_error(excinfo, str(tiny_dir / "params.json"), "is a file")


@pytest.mark.parametrize("spec", ["{tmp}/nope", "./nope", "../nope/x", "a/b/c"])
def test_resolve_checkpoint_refuses_a_missing_directory(spec, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = spec.format(tmp=tmp_path)
    with pytest.raises(InputError) as excinfo:
        resolve_checkpoint(spec)
    one_line_error(excinfo, spec, "no such checkpoint directory")


# --- the Hub, without the network ---


def hub_error(status: int, url: str = f"https://huggingface.co/api/models/{REPO}/revision/main", **headers):
    """The exception huggingface_hub itself raises for this HTTP response."""
    response = httpx2.Response(status, headers=headers, request=httpx2.Request("GET", url))
    with pytest.raises(Exception) as excinfo:
        hf_raise_for_status(response)
    return excinfo.value


@pytest.mark.parametrize("exc, says", [
    (hub_error(403, **{"X-Error-Code": "GatedRepo"}), f"request access at https://huggingface.co/{REPO}"),
    (hub_error(401, **{"X-Error-Code": "GatedRepo"}), "hf auth login"),
    (hub_error(401), "hf auth login"),
    (hub_error(404, **{"X-Error-Code": "RepoNotFound"}), "no such repo"),
    (hub_error(401, **{"X-Error-Message": "Invalid credentials in Authorization header"}), "unauthorised"),
    (OfflineModeIsEnabled("offline"), "HF_HUB_OFFLINE"),
    (httpx2.ConnectError("[Errno -3] Temporary failure in name resolution"), "cannot reach huggingface.co"),
], ids=["gated-403", "gated-401", "not-logged-in", "not-found", "bad-token", "offline", "no-connection"])
def test_hub_errors_become_one_line(exc, says):
    error = _explain_hub_error(REPO, exc)
    assert isinstance(error, InputError)
    assert "\n" not in str(error) and str(error).startswith(f"{REPO}: ") and says in str(error), str(error)


def test_download_when_offline_says_so(monkeypatch, tmp_path):
    # huggingface_hub reads HF_HUB_OFFLINE once, at import, into constants.HF_HUB_OFFLINE.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as excinfo:
        download(REPO, out_dir=tmp_path / "dl")
    one_line_error(excinfo, REPO, "HF_HUB_OFFLINE")


def test_resolve_checkpoint_downloads_a_hub_id(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # so "meta-llama/..." is not a local path
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(InputError) as excinfo:
        resolve_checkpoint("meta-llama/Llama-3.2-1B-Instruct-not-cached")
    one_line_error(excinfo, "meta-llama/Llama-3.2-1B-Instruct-not-cached", "HF_HUB_OFFLINE")
