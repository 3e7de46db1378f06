"""Webhook destinations: https to public hosts only, decided without touching the network."""

from __future__ import annotations

import ipaddress

import pytest

from reconciler.manifests.urls import address_problem, jwks_uri_problems, literal_address, webhook_url_problems


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.acme-bank.example/scp",
        "https://hooks.acme-bank.example:8443/scp?tenant=msa",
        "https://93.184.216.34/hook",
        "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
    ],
)
def test_public_https_urls_are_accepted(url: str) -> None:
    assert webhook_url_problems(url) == []


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://hooks.acme.example/x", "must use https"),
        ("https://u:p@hooks.acme.example/x", "credentials"),
        ("https://hooks.acme.example/x?api_key=1", "credential in its query"),
        ("https://hooks.acme.example/x?sig=1", "credential in its query"),
        ("https://127.0.0.1/x", "loopback"),
        ("https://127.1/x", "loopback"),
        ("https://0177.0.0.1/x", "loopback"),
        ("https://2130706433/x", "loopback"),
        ("https://0x7f000001/x", "loopback"),
        ("https://[::1]/x", "loopback"),
        ("https://[::ffff:127.0.0.1]/x", "loopback"),
        ("https://localhost/x", "private host name"),
        ("https://api.localhost/x", "private host name"),
        ("https://printer.local/x", "private host name"),
        ("https://10.1.2.3/x", "private"),
        ("https://172.16.0.1/x", "private"),
        ("https://192.168.0.1/x", "private"),
        ("https://100.64.0.1/x", "private or reserved"),
        ("https://169.254.169.254/latest", "metadata"),
        ("https://[fd00:ec2::254]/x", "metadata"),
        ("https://metadata.google.internal/x", "metadata"),
        ("https://169.254.1.1/x", "link-local"),
        ("https://[fe80::1]/x", "link-local"),
        ("https://0.0.0.0/x", "unspecified"),
        ("https://224.0.0.1/x", "multicast"),
        ("https:///x", "no host"),
        ("https://hooks.acme.example:99999/x", "not a valid URL"),
        ("https://[::1/x", "not a valid URL"),
    ],
)
def test_unsafe_urls_are_refused_with_a_reason(url: str, words: str) -> None:
    problems = webhook_url_problems(url)
    assert any(words in problem for problem in problems), problems


def test_loopback_flag_allows_http_on_loopback_only() -> None:
    assert webhook_url_problems("http://127.0.0.1:9000/hook", allow_loopback=True) == []
    assert webhook_url_problems("http://localhost:9000/hook", allow_loopback=True) == []
    assert webhook_url_problems("http://10.0.0.1/hook", allow_loopback=True) != []
    assert webhook_url_problems("http://hooks.acme.example/hook", allow_loopback=True) != []
    assert webhook_url_problems("http://169.254.169.254/", allow_loopback=True) != []


def test_names_are_not_resolved() -> None:
    assert literal_address("hooks.acme.example") is None
    assert literal_address("1.2.3.4.nip.io") is None


def test_address_rules_for_resolved_addresses() -> None:
    assert address_problem(ipaddress.ip_address("8.8.8.8")) is None
    assert address_problem(ipaddress.ip_address("10.0.0.1")) is not None


def test_jwks_uri_follows_the_webhook_rules_in_its_own_words() -> None:
    assert jwks_uri_problems("https://keys.acme.example/scp/jwks.json") == []
    assert jwks_uri_problems("http://keys.acme.example/jwks.json") == ["uses http; a jwksUri must use https"]
    assert jwks_uri_problems("https://10.0.0.1/jwks.json") == [
        "points at a private or reserved address (10.0.0.1); jwksUri hosts must be public"
    ]
    assert jwks_uri_problems("http://127.0.0.1:9000/jwks.json", allow_loopback=True) == []
    assert jwks_uri_problems("http://10.0.0.1/jwks.json", allow_loopback=True) != []
    assert webhook_url_problems("http://hooks.acme.example/x") == ["uses http; webhooks must use https"]
