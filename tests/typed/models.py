"""Message types of every supported family, defined at module level (annotations resolve)."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Literal, TypedDict

import msgspec
from pydantic import BaseModel, Field

# ---- msgspec Structs: a tagged union ------------------------------------------------------


class Join(msgspec.Struct, tag_field="type", tag="join"):
    room: str


class Say(msgspec.Struct, tag_field="type", tag="say"):
    text: str


class Said(msgspec.Struct, tag_field="type", tag="said"):
    room: str
    text: str


# ---- pydantic models: a discriminated union ---------------------------------------------


class PJoin(BaseModel):
    type: Literal["join"]
    room: str


class PSay(BaseModel):
    type: Literal["say"]
    text: str = Field(min_length=1)


PChat = Annotated[PJoin | PSay, Field(discriminator="type")]


class POut(BaseModel):
    type: Literal["said"] = "said"
    text: str


# ---- dataclasses and TypedDicts: unions selected by their ``type`` field ------------------


@dataclasses.dataclass
class DJoin:
    type: Literal["join"]
    room: str


@dataclasses.dataclass
class DSay:
    type: Literal["say"]
    text: str


@dataclasses.dataclass
class Point:
    x: int
    y: int


class TJoin(TypedDict):
    type: Literal["join"]
    room: str


class TSay(TypedDict):
    type: Literal["say"]
    text: str


class Untagged1(TypedDict):
    a: int


class Untagged2(TypedDict):
    b: int
