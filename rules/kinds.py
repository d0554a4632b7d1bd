"""Every rule kind, by the name a pack gives it in ``kind``: the one list of kinds, written out, not collected.

The pack loader validates each rule as the class its ``kind`` names here (a tagged union made from this table, so a
bad rule is reported against its own kind's fields) and checks the references between rules (``Rule.refers_to``).
The engine takes the pack's rules so validated and evaluates each device rule at the stage whose contract its class
implements (``rules.rule``: value, reading, clock), never naming a kind; the streams' site stage takes the ``Site``
rules. So adding a kind is a class in a module of its own and its line in ``RULE_KINDS`` (docs/rules.md, "Adding a
rule kind"); nothing registers itself on import.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import reduce
from operator import or_
from typing import TYPE_CHECKING, Annotated, Final

from pydantic import Field

from rules.condition import Condition
from rules.offline import Offline
from rules.rate import Rate
from rules.rule import Rule
from rules.site import Site
from rules.threshold import Threshold

#: Every rule kind by its pack name; each class's ``kind`` tag is its key (tests/unit/rules/test_kinds.py checks).
#: The order is the order a pack's error message lists the kinds in.
RULE_KINDS: Final[Mapping[str, type[Rule]]] = {
    "threshold": Threshold,  # a value rule: each in-order value of its metric
    "rate": Rate,  # a value rule that sees late values too
    "condition": Condition,  # a reading rule: after a reading's values
    "offline": Offline,  # a clock rule
    "site": Site,  # not a device rule: the streams' site stage correlates device findings (rules.site)
}

if TYPE_CHECKING:
    AnyRule = Rule
else:
    #: A pack's rule: the class its ``kind`` names in ``RULE_KINDS``.
    AnyRule = Annotated[reduce(or_, RULE_KINDS.values()), Field(discriminator="kind")]
