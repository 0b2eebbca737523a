"""What every record Warden puts on Kafka is: a pydantic v2 model, frozen, refusing unknown
fields, written as orjson.

Every record carries ``schema_version`` so a reader can refuse what it does not understand instead
of misreading it. A typo in a producer's field name is an error, not a silent default.
"""

from __future__ import annotations

import functools
import operator
from typing import Annotated, Any, ClassVar, Final, Literal, Self

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

# Final, so that mypy reads it as Literal[1], the type of every record's schema_version.
SCHEMA_VERSION: Final = 1

# The JSON Schema keyword on a property that a record's bytes, and so its signing bytes, leave
# out while it holds its default (docs/wire-formats.md, "omitted at default").
OMIT_WHEN_DEFAULT: Final = "x-omit-when-default"


# The integers orjson writes: 64 bits, signed or not. It raises on any other.
_WRITABLE_INTS = range(-(2**63), 2**64)


def _wide(value: Any) -> bool:
    """Whether ``value`` (JSON-shaped) holds an integer orjson cannot write."""
    kind = type(value)
    if kind is int:
        return value not in _WRITABLE_INTS
    if kind is dict:
        return any(_wide(item) for item in value.values())
    if kind is list or kind is tuple:
        return any(_wide(item) for item in value)
    return False


def _as_text(value: Any) -> Any:
    """``value`` with every integer orjson cannot write as its decimal text."""
    kind = type(value)
    if kind is int:
        return value if value in _WRITABLE_INTS else str(value)
    if kind is dict:
        return {key: _as_text(item) for key, item in value.items()}
    if kind is list or kind is tuple:
        return [_as_text(item) for item in value]
    return value


def _writable(facts: dict[str, Any]) -> dict[str, Any]:
    return _as_text(facts) if _wide(facts) else facts


# A free-form JSON object a record carries (a verdict's facts, an audit event's details): an integer
# in it past 64 bits (a sum of u64 amounts, a value plus a fee) is kept as its decimal text, as
# amounts travel everywhere else. Left an integer, orjson would refuse to write the record, and the
# intent it answers would get no outcome.
JsonObject = Annotated[dict[str, Any], AfterValidator(_writable)]


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_version: Literal[1] = SCHEMA_VERSION

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", by_alias=True))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Self:
        return cls.model_validate_json(raw)


class Evolving(Record):
    """A record that gained fields after its first version: those are left out of it while they
    hold their defaults, so what was signed before they existed is the same bytes and still
    verifies, and readers of the first version still read it."""

    _OMITTED_AT_DEFAULT: ClassVar[dict[str, Any]] = {}

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        # Each such field is left out by pydantic-core's own serializer (exclude_if, one C-level
        # comparison per field) rather than by a Python model serializer wrapped around every
        # dump: about twice as fast on the hot path of the worker and the signer. Same bytes.
        super().__pydantic_init_subclass__(**kwargs)
        for name, default in cls._OMITTED_AT_DEFAULT.items():
            if name in cls.model_fields:
                cls.model_fields[name].exclude_if = functools.partial(operator.eq, default)
        cls.model_rebuild(force=True)


class WireJsonSchema(GenerateJsonSchema):
    """The JSON Schema of a record, with `OMIT_WHEN_DEFAULT` on each property its bytes leave out
    while it holds its default. The mark is read from the serializer's own exclusions, the ones
    every dump and every signing-bytes method goes through: `Evolving`'s fields omitted at
    default, and a contained record's ``schema_version`` (excluded, and always at its one value).
    So a producer that follows the schema signs the bytes Warden rebuilds, and the mark cannot
    drift from them."""

    def model_field_schema(self, schema: core_schema.ModelField) -> JsonSchemaValue:
        json_schema = super().model_field_schema(schema)
        if schema.get("serialization_exclude") or schema.get("serialization_exclude_if") is not None:
            return {**json_schema, OMIT_WHEN_DEFAULT: True}
        return json_schema
