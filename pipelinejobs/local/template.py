"""Read template.yaml as CloudFormation does: short-form intrinsic tags become their long form.

`!Ref X` becomes `{"Ref": "X"}`, `!GetAtt A.B` becomes `{"Fn::GetAtt": ["A", "B"]}`, `!Sub s` becomes
`{"Fn::Sub": s}`, and so on for every tag CloudFormation knows. Scalars keep CloudFormation's
reading: a date-like value such as `2010-09-09` stays a string.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

__all__ = ["INTRINSIC_FUNCTIONS", "TemplateError", "load_template"]

# Tag -> long-form key. `!Ref` and `!Condition` are not `Fn::` functions.
_INTRINSICS = {
    "Ref": "Ref",
    "Condition": "Condition",
    "GetAtt": "Fn::GetAtt",
    "Sub": "Fn::Sub",
    "If": "Fn::If",
    "Equals": "Fn::Equals",
    "Not": "Fn::Not",
    "And": "Fn::And",
    "Or": "Fn::Or",
    "Select": "Fn::Select",
    "Join": "Fn::Join",
    "Split": "Fn::Split",
    "FindInMap": "Fn::FindInMap",
    "ImportValue": "Fn::ImportValue",
    "Base64": "Fn::Base64",
    "Cidr": "Fn::Cidr",
    "GetAZs": "Fn::GetAZs",
    "Transform": "Fn::Transform",
    "Length": "Fn::Length",
    "ToJsonString": "Fn::ToJsonString",
}

# The long-form keys: a mapping with one of these as its only key is a function call, not data.
INTRINSIC_FUNCTIONS = frozenset(_INTRINSICS.values())


class TemplateError(ValueError):
    """The template cannot be read: not YAML, not a mapping, or a malformed intrinsic tag."""


class _TemplateLoader(yaml.SafeLoader):  # type: ignore[misc,unused-ignore]
    """A safe loader that knows CloudFormation's short tags and reads no timestamps."""


# CloudFormation keeps `2010-09-09` a string; PyYAML's safe loader would make it a date.
_TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_intrinsic(loader: _TemplateLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    key = _INTRINSICS.get(tag_suffix)
    if key is None:
        raise yaml.constructor.ConstructorError(
            None, None, f"unknown CloudFormation tag !{tag_suffix}", node.start_mark
        )
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if key == "Fn::GetAtt":
            # `!GetAtt Resource.Attribute`; an attribute may itself hold dots (Outputs.Name).
            resource, dot, attribute = str(value).partition(".")
            if not dot or not resource or not attribute:
                raise yaml.constructor.ConstructorError(
                    None, None, f"!GetAtt needs Resource.Attribute, not {value!r}", node.start_mark
                )
            value = [resource, attribute]
        elif key == "Fn::GetAZs" and value is None:
            value = ""
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type,unused-ignore]
    return {key: value}


_TemplateLoader.add_multi_constructor("!", _construct_intrinsic)


def load_template(path: str | Path) -> dict[str, Any]:
    """Load a CloudFormation/SAM template (YAML or JSON) with intrinsics in their long form.

    Raises TemplateError when the file is not a YAML mapping or holds an unknown or malformed tag,
    and OSError when it cannot be read.
    """
    text = Path(path).read_text(encoding="utf-8")
    try:
        template = yaml.load(text, Loader=_TemplateLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise TemplateError(f"{path}: {exc}") from exc
    if not isinstance(template, dict):
        raise TemplateError(f"{path}: a template is a mapping, not {type(template).__name__}")
    return template
