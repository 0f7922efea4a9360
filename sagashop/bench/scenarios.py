"""What a bench run buys: the shop it stocks and the purchases it places, per scenario.

- `uniform`: purchases spread over enough users that no bag fills, each buying one unit of an
  item drawn at random from several with ample stock, so that nothing but the payment mock
  refuses a purchase;
- `flash-sale`: many users rush one item with little stock; exactly the stock is sold and every
  other order is cancelled by the item service for lack of stock.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any

from sagashop.actors.inventory import BAG_SLOTS
from sagashop.actors.item import refusal
from sagashop.http.bodies import MAX_STOCK

SCENARIOS = ("uniform", "flash-sale")
PURCHASES_PER_USER = 15
"""Uniform: at most this many purchases per user, a few below the bag's 20 slots."""
UNIFORM = {"purchases": 2_000, "items": 10}
FLASH_SALE = {"purchases": 5_000, "users": 1_000, "stock": 100}
CONCURRENCY = 50
UNIFORM_PRICES = range(100, 1_001, 100)
FLASH_SALE_PRICE = 1_000


@dataclass
class _Shelf:
    stock: int


SOLD_OUT = f"item: {refusal(_Shelf(stock=0), 1)}"
"""The reason an order for one unit of a sold-out item is cancelled with, in the item service's
own words."""


@dataclass(frozen=True)
class Plan:
    scenario: str
    purchases: int
    users: int
    items: int
    stock: int
    """Of each item."""
    concurrency: int = CONCURRENCY
    seed: int = 1

    @property
    def per_user(self) -> int:
        """The most purchases one user places: users take the purchases in turn."""
        return math.ceil(self.purchases / self.users)

    def item_bodies(self, rng: random.Random) -> list[dict[str, Any]]:
        if self.scenario == "flash-sale":
            return [{"name": "flash sale", "price": FLASH_SALE_PRICE, "stock": self.stock}]
        return [
            {"name": f"bench item {n}", "price": rng.choice(UNIFORM_PRICES), "stock": self.stock}
            for n in range(self.items)
        ]

    def user_bodies(self, prices: list[int]) -> list[dict[str, Any]]:
        """Users who can afford every purchase they will place, whatever it buys."""
        balance = max(prices) * self.per_user
        return [{"username": f"bench {n}", "balance": balance} for n in range(self.users)]

    def orders(
        self, users: list[str], items: list[str], rng: random.Random
    ) -> list[dict[str, Any]]:
        """One unit each; users in turn (so none places more than `per_user`), items at random."""
        return [
            {"userId": users[n % len(users)], "itemId": rng.choice(items), "quantity": 1}
            for n in range(self.purchases)
        ]


def users_for(purchases: int) -> int:
    """Enough users that none buys more than `PURCHASES_PER_USER` items, so no bag fills."""
    return math.ceil(purchases / PURCHASES_PER_USER)


def make_plan(
    scenario: str,
    purchases: int | None = None,
    users: int | None = None,
    items: int | None = None,
    stock: int | None = None,
    concurrency: int = CONCURRENCY,
    seed: int = 1,
) -> Plan:
    """The scenario's plan, with its defaults where nothing is given; ValueError if the figures
    cannot make that scenario."""
    if scenario == "flash-sale":
        if items not in (None, 1):
            raise ValueError("a flash sale sells one item: leave out --items")
        plan = Plan(
            scenario,
            _given(purchases, FLASH_SALE["purchases"]),
            _given(users, FLASH_SALE["users"]),
            1,
            _given(stock, FLASH_SALE["stock"]),
            concurrency,
            seed,
        )
    elif scenario == "uniform":
        purchases = _given(purchases, UNIFORM["purchases"])
        plan = Plan(
            scenario,
            purchases,
            _given(users, users_for(purchases)),
            _given(items, UNIFORM["items"]),
            _given(stock, min(purchases, MAX_STOCK)),
            concurrency,
            seed,
        )
    else:
        raise ValueError(f"no scenario {scenario!r}; know {', '.join(SCENARIOS)}")
    _check(plan)
    return plan


def _given(value: int | None, default: int) -> int:
    return default if value is None else value


def _check(plan: Plan) -> None:
    for name in ("purchases", "users", "items", "concurrency"):
        if getattr(plan, name) < 1:
            raise ValueError(f"--{name} must be at least 1")
    if not 0 <= plan.stock <= MAX_STOCK:
        raise ValueError(f"--stock must be between 0 and {MAX_STOCK}")
    if plan.scenario == "flash-sale":
        if plan.stock > plan.purchases:
            raise ValueError("a flash sale sells out: --stock must not exceed --purchases")
        if plan.per_user > BAG_SLOTS:
            raise ValueError(
                f"{plan.per_user} purchases per user would fill a bag of {BAG_SLOTS}: "
                "more --users, or fewer --purchases"
            )
