"""Nobody can lock a user out: others' wrong guesses never make the owner's right password a 429."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from rawws.accounts.login_limits import PERIOD_S, LoginLimits
from tests.conftest import StartServer
from tests.support.helpers import PASSWORD, http, register

GUESSER = "192.0.2.66"
OWNER = "198.51.100.5"
WRONG = "wrong-Passw0rd"


async def login_from(port: int, username: str, password: str, address: str) -> int:
    reply = await http(
        port,
        "POST",
        "/auth/login",
        {"username": username, "password": password},
        headers={"X-Forwarded-For": address},
    )
    return reply.status


async def test_a_guessing_flood_does_not_lock_the_owner_out(
    start_server: StartServer,
) -> None:
    server = await start_server(
        logins_per_minute_per_user=10, forwarded_allow_ips=("127.0.0.1",)
    )
    assert (await register(server.port, "alice")).status == 201
    guesses = [
        await login_from(server.port, "alice", WRONG, GUESSER) for _ in range(15)
    ]
    assert guesses == [401] * 10 + [429] * 5
    # Alice, from her own address, signs in at once and can change her password.
    assert await login_from(server.port, "alice", PASSWORD, OWNER) == 200
    reply = await http(
        server.port,
        "POST",
        "/auth/login",
        {"username": "alice", "password": PASSWORD},
        headers={"X-Forwarded-For": OWNER},
    )
    changed = await http(
        server.port,
        "POST",
        "/auth/password",
        {"current_password": PASSWORD, "new_password": PASSWORD + "-2"},
        headers={
            "X-Forwarded-For": OWNER,
            "Authorization": f"Bearer {reply.json['access_token']}",
        },
    )
    assert changed.status == 200
    # The guesser is still limited, whatever the case of the name.
    assert await login_from(server.port, "ALICE", WRONG, GUESSER) == 429
    assert await login_from(server.port, "alice", PASSWORD + "-2", GUESSER) == 429


# An attempt: (who, seconds since the one before); who 0 is the owner, 1..3 are guessers at other addresses.
attempts = st.lists(
    st.tuples(st.integers(0, 3), st.floats(0, PERIOD_S / 4)), max_size=120
)


@settings(max_examples=300)
@given(attempts, st.integers(1, 5), st.integers(1, 12))
def test_each_address_is_answered_as_if_it_were_alone(
    sequence: list[tuple[int, float]], per_user: int, per_address: int
) -> None:
    """Over any interleaving of the owner's and the guessers' attempts, everyone gets exactly the answers
    they would get with nobody else trying: no one's guesses spend the owner's budget (nor another's)."""
    together = LoginLimits(per_user, per_address)
    alone = {who: LoginLimits(per_user, per_address) for who in range(4)}
    now = 0.0
    for who, delay in sequence:
        now += delay
        address = OWNER if who == 0 else f"192.0.2.{who}"
        assert together.acquire("alice", address, now) == alone[who].acquire(
            "alice", address, now
        )


def test_the_owner_from_a_fresh_address_is_allowed_after_any_flood() -> None:
    limits = LoginLimits(3, 30)
    for n in range(10_000):
        limits.acquire("alice", f"203.0.113.{n % 250}", 0.0)
    assert limits.acquire("alice", OWNER, 0.0) == 0.0
