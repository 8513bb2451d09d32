"""Staff login lockout (django-axes): 5 wrong passwords lock one username at one address."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt, AccessFailureLog
from django.test import Client
from django.utils import timezone

from tests.factories import make_staff

pytestmark = pytest.mark.django_db

PASSWORD = "pw-for-tests-123"  # what make_staff gives
LOGIN = "/admin/login/?next=/admin/"


def log_in(client: Client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def logged_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def fail(client: Client, username: str, times: int, address: str = "127.0.0.1"):
    return [log_in(client, username, "wrong", address).status_code for _ in range(times)]


def test_five_wrong_passwords_lock_the_login_and_the_right_one_is_refused(settings):
    assert settings.AXES_ENABLED and settings.AXES_FAILURE_LIMIT == 5
    make_staff("clerk")
    client = Client()
    assert fail(client, "clerk", 4) == [200] * 4  # the login form again, with its error
    locked = log_in(client, "clerk", "wrong")
    assert locked.status_code == 429
    right = log_in(client, "clerk", PASSWORD)
    assert right.status_code == 429
    assert not logged_in(client)
    assert AccessFailureLog.objects.filter(username="clerk").count() == 6


def test_the_lockout_page_says_why_and_for_how_long():
    make_staff("clerk")
    client = Client()
    fail(client, "clerk", 4)
    page = log_in(client, "clerk", "wrong")
    assert page.status_code == 429
    text = page.content.decode()
    assert "Login locked" in text
    assert "Omnichannel back office" in text
    assert "clerk" in text
    assert "0:15:00" in text  # LOGIN_COOLOFF_MINUTES


def test_another_user_and_the_same_user_elsewhere_are_unaffected():
    make_staff("clerk")
    make_staff("manager")
    attacker = Client()
    fail(attacker, "clerk", 5)
    other_user = Client()
    assert log_in(other_user, "manager", PASSWORD).status_code == 302
    assert logged_in(other_user)
    at_the_office = Client()  # username and address together are locked, not the username alone
    assert log_in(at_the_office, "clerk", PASSWORD, address="10.1.2.3").status_code == 302
    assert logged_in(at_the_office)


def test_after_the_cool_off_the_user_logs_in(settings):
    """The failures are dated back instead of waited out (the test slept past a 1 s cool-off):
    a minute short of LOGIN_COOLOFF_MINUTES still locked, past it the login goes through."""
    make_staff("clerk")
    client = Client()
    fail(client, "clerk", 5)
    assert log_in(client, "clerk", PASSWORD).status_code == 429

    def failed_ago(delta):
        AccessAttempt.objects.filter(username="clerk").update(attempt_time=timezone.now() - delta)

    failed_ago(settings.AXES_COOLOFF_TIME - timedelta(minutes=1))
    assert log_in(client, "clerk", PASSWORD).status_code == 429
    failed_ago(settings.AXES_COOLOFF_TIME + timedelta(seconds=1))
    assert log_in(client, "clerk", PASSWORD).status_code == 302
    assert logged_in(client)


def test_an_admin_deleting_the_attempt_lifts_the_lockout():
    make_staff("clerk")
    client = Client()
    fail(client, "clerk", 5)
    assert log_in(client, "clerk", PASSWORD).status_code == 429
    admin = Client()
    admin.force_login(make_staff("root", superuser=True))
    attempt = AccessAttempt.objects.get(username="clerk")
    assert admin.get("/admin/axes/accessattempt/").status_code == 200
    response = admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert log_in(client, "clerk", PASSWORD).status_code == 302
    assert logged_in(client)


def test_a_successful_login_starts_the_count_afresh():
    make_staff("clerk")
    client = Client()
    fail(client, "clerk", 4)
    assert log_in(client, "clerk", PASSWORD).status_code == 302
    client.logout()
    assert fail(client, "clerk", 4) == [200] * 4
    assert log_in(client, "clerk", PASSWORD).status_code == 302


def test_an_unknown_username_is_locked_the_same_way():
    """No hint whether the account exists: the lockout looks the same."""
    client = Client()
    assert fail(client, "nobody", 5) == [200] * 4 + [429]


PROXY = "10.0.0.2"  # a load balancer in front of gunicorn, which appends to X-Forwarded-For


def log_in_through(client: Client, username: str, password: str, forwarded_for: str):
    return client.post(
        LOGIN,
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded_for,
    )


def test_behind_the_proxy_an_attacker_does_not_lock_staff_out_everywhere(settings):
    """README: wrong passwords lock "one username at one IP address"; NUM_PROXIES says how
    many proxies are in front. Read from REMOTE_ADDR alone, every login behind the proxy came
    from the proxy: five wrong passwords from anywhere locked the admin out of every office."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    make_staff("admin", superuser=True)
    attacker = Client()
    codes = [
        log_in_through(attacker, "admin", "wrong", "203.0.113.66").status_code for _ in range(5)
    ]
    assert codes == [200] * 4 + [429]
    assert log_in_through(attacker, "admin", PASSWORD, "203.0.113.66").status_code == 429
    at_the_office = Client()
    answer = log_in_through(at_the_office, "admin", PASSWORD, "198.51.100.7")
    assert answer.status_code == 302, answer.status_code
    assert logged_in(at_the_office)
    assert AccessAttempt.objects.get().ip_address == "203.0.113.66"


def test_behind_the_proxy_a_forged_prefix_does_not_escape_the_lockout(settings):
    """The proxy appends what it saw: the entries before it are the caller's to write."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    make_staff("admin")
    attacker = Client()
    codes = [
        log_in_through(attacker, "admin", "wrong", f"1.2.3.{n}, 203.0.113.66").status_code
        for n in range(6)
    ]
    assert codes == [200] * 4 + [429, 429]


def test_with_no_proxy_counted_a_forged_forwarded_for_does_not_escape_the_lockout():
    """NUM_PROXIES 0 (the default): the socket's address, whatever X-Forwarded-For says; a
    new header on every try did not make a new address to guess from."""
    make_staff("clerk")
    client = Client()
    codes = [
        client.post(
            LOGIN,
            {"username": "clerk", "password": "wrong"},
            REMOTE_ADDR="203.0.113.66",
            HTTP_X_FORWARDED_FOR=f"198.51.100.{n}",
        ).status_code
        for n in range(6)
    ]
    assert codes == [200] * 4 + [429, 429]
    assert AccessAttempt.objects.get().ip_address == "203.0.113.66"


def test_a_forwarded_entry_that_is_no_address_counts_the_proxys(settings):
    """NUM_PROXIES set higher than the proxies there are reads an entry the caller wrote: one
    that is no IP address is not stored as one (the database refused it, a 500), the socket's
    address counts instead."""
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 2}
    make_staff("clerk")
    answer = log_in_through(Client(), "clerk", "wrong", "not-an-address, 203.0.113.66")
    assert answer.status_code == 200
    assert AccessAttempt.objects.get().ip_address == PROXY
