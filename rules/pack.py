"""Rule packs: YAML files of rules, validated with errors that name the file, the rule and the field.

    version: 1
    name: default
    flap: {changes: 6, window_s: 600, calm_s: 600}
    rules:
      - id: gas.ch4
        kind: threshold
        ...

Each rule is validated as the class its ``kind`` names in ``rules.kinds.RULE_KINDS``, then the references between
rules are checked (the rules a condition or a site rule refers to must be device rules of the pack).
``load_pack(path)`` raises ``RulePackError`` listing every problem, e.g.
``default.yaml: rule 'gas.ch4' (rules[0]) field 'levels.orange': Input should be a valid number``.
The packaged default pack is ``rules/packs/default.yaml``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from core.errors import SmartCityError
from core.yamlfile import read_yaml
from rules.alarm import FlapPolicy
from rules.kinds import AnyRule
from rules.rule import DeviceRule

DEFAULT_PACK = Path(__file__).parent / "packs" / "default.yaml"


class RulePackError(SmartCityError):
    """A rule pack that cannot be used; ``problems`` lists each as 'file: rule ... field ...: message'."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class FlapSettings(BaseModel):
    """The pack's ``flap:`` section: when a rule's alarm counts as flapping (``rules.alarm``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    changes: Annotated[int, Field(ge=2)] = 6
    window_s: Annotated[float, Field(gt=0)] = 600
    calm_s: Annotated[float, Field(gt=0)] = 600

    @property
    def policy(self) -> FlapPolicy:
        return FlapPolicy(self.changes, self.window_s, self.calm_s)


class RulePack(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    name: Annotated[str, Field(min_length=1, max_length=100)]
    flap: FlapSettings = FlapSettings()
    rules: Annotated[list[AnyRule], Field(min_length=1)]

    @model_validator(mode="after")
    def _references(self) -> RulePack:
        ids = [r.id for r in self.rules]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"rule ids must be unique; repeated: {', '.join(repeated)}")
        device_rules = {r.id for r in self.rules if isinstance(r, DeviceRule)}
        for rule in self.rules:
            refs = rule.refers_to
            unknown = sorted(refs - device_rules - ({rule.id} & device_rules))
            if unknown:
                raise ValueError(f"rule {rule.id!r} refers to unknown device rules: {', '.join(unknown)}")
            if rule.id in refs:
                raise ValueError(f"rule {rule.id!r} refers to itself")
        return self


def parse_pack(data: Any, source: str) -> RulePack:
    try:
        return RulePack.model_validate(data)
    except ValidationError as exc:
        raise RulePackError(list(_problems(exc, data, source))) from None


def load_pack(path: Path = DEFAULT_PACK) -> RulePack:
    return parse_pack(read_yaml(path, lambda problem: RulePackError([problem])), path.name)


def _problems(exc: ValidationError, data: Any, source: str) -> Iterator[str]:
    for error in exc.errors(include_url=False):
        loc = list(error["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
            index = loc[1]
            rule = data["rules"][index] if isinstance(data, dict) and isinstance(data.get("rules"), list) else None
            name = rule.get("id") if isinstance(rule, dict) else None
            where = f" rule {name!r} (rules[{index}])" if name else f" rules[{index}]"
            loc = loc[2:]
            if loc and isinstance(rule, dict) and loc[0] == rule.get("kind"):
                loc = loc[1:]  # the discriminator's tag, not a field
        field = ".".join(str(p) for p in loc if not (isinstance(p, str) and p in _UNION_TAGS))
        if not field and error["type"] in ("union_tag_invalid", "union_tag_not_found"):
            field = "kind"
        yield f"{source}:{where} field {field!r}: {error['msg']}" if field else f"{source}:{where} {error['msg']}"


_UNION_TAGS = {"MetricIs", "RuleActive", "function-after[_known(), MetricIs]"}
