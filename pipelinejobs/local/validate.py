"""Run the SAM translator on template.yaml offline, as `sam deploy` would before CloudFormation sees it.

    python -m pipelinejobs.local.validate template.yaml

Prints `SAM translator: OK (N resources)` and exits 0, or prints every error and exits 1. Nothing here
calls AWS: local code locations are replaced by placeholder S3 URIs (as `sam package` would replace
them by real ones), the region and partition are fixed, and the managed-policy map is empty, which is
enough as long as the template names no AWS managed policy by its bare name.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pipelinejobs.local.template import TemplateError, load_template

__all__ = ["TranslationError", "main", "translate"]

# Where SAM resources point at local code or documents; `sam package` uploads these.
_LOCAL_URI_PROPERTIES = {
    "AWS::Serverless::Function": ("CodeUri",),
    "AWS::Serverless::LayerVersion": ("ContentUri",),
    "AWS::Serverless::Api": ("DefinitionUri",),
    "AWS::Serverless::HttpApi": ("DefinitionUri",),
    "AWS::Serverless::StateMachine": ("DefinitionUri",),
}
_PLACEHOLDER_BUCKET = "pipelinejobs-validate-placeholder"
_ACCOUNT_ID = "123456789012"


class TranslationError(Exception):
    """The SAM translator rejected the template; `errors` holds each of its messages."""

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(self.errors))


def _as_placeholder_uri(value: Any) -> Any:
    if isinstance(value, str) and not value.startswith("s3://"):
        return f"s3://{_PLACEHOLDER_BUCKET}/{value.strip('/') or 'code'}.zip"
    return value


def _with_placeholder_uris(template: dict[str, Any]) -> dict[str, Any]:
    for resource in (template.get("Resources") or {}).values():
        if not isinstance(resource, dict):
            continue
        properties = resource.get("Properties")
        for name in _LOCAL_URI_PROPERTIES.get(resource.get("Type", ""), ()):
            if isinstance(properties, dict) and name in properties:
                properties[name] = _as_placeholder_uri(properties[name])
    function_globals = (template.get("Globals") or {}).get("Function")
    if isinstance(function_globals, dict) and "CodeUri" in function_globals:
        function_globals["CodeUri"] = _as_placeholder_uri(function_globals["CodeUri"])
    return template


def translate(
    template: Mapping[str, Any],
    *,
    parameter_values: Mapping[str, Any] | None = None,
    region: str = "us-east-1",
) -> dict[str, Any]:
    """Translate a SAM template (long-form intrinsics, as load_template returns) to CloudFormation.

    The input is not modified. Raises TranslationError with every message of the translator.
    """
    # Imported here: the translator is a dev tool, and takes a while to import.
    from boto3.session import Session
    from samtranslator.metrics.metrics import DummyMetricsPublisher, Metrics
    from samtranslator.model.exceptions import ExceptionWithMessage, InvalidDocumentException
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam_template = _with_placeholder_uris(copy.deepcopy(dict(template)))
    values: dict[str, Any] = {
        "AWS::Region": region,
        "AWS::Partition": "aws-cn" if region.startswith("cn-") else "aws",
        "AWS::AccountId": _ACCOUNT_ID,
        **(parameter_values or {}),
    }
    metrics = Metrics("ServerlessTransform", DummyMetricsPublisher())
    translator = Translator(None, Parser(), boto_session=Session(region_name=region), metrics=metrics)
    try:
        return dict(translator.translate(sam_template, parameter_values=values, get_managed_policy_map=dict))
    except InvalidDocumentException as exc:
        raise TranslationError([cause.message for cause in exc.causes] or [exc.message]) from exc
    except ExceptionWithMessage as exc:
        raise TranslationError([exc.message]) from exc
    finally:
        metrics.publish()  # to nowhere; otherwise the translator warns about unpublished metrics


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pipelinejobs.local.validate",
        description="Run the SAM translator on a template, offline.",
    )
    parser.add_argument("template", nargs="?", default="template.yaml", type=Path)
    args = parser.parse_args(argv)
    try:
        translated = translate(load_template(args.template))
    except (OSError, TemplateError) as exc:
        print(f"SAM translator: cannot read {args.template}: {exc}", file=sys.stderr)
        return 1
    except TranslationError as exc:
        print(f"SAM translator: {len(exc.errors)} error(s) in {args.template}", file=sys.stderr)
        for error in exc.errors:
            print(f"  - {error}", file=sys.stderr)
        return 1
    print(f"SAM translator: OK ({len(translated.get('Resources', {}))} resources)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
