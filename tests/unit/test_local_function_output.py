"""What the local stack's functions print: nothing, whatever ran before them in the process.

The stack runs its functions with Powertools' metrics off and their logs at WARNING. Two things in
Powertools could still make them print: metrics kept (never flushed) and printed once one holds 100
values, and a service logger some earlier code configured (INFO, bound to the stdout of its time).
"""

from __future__ import annotations

import logging
import textwrap
import uuid
from pathlib import Path

import pytest
from aws_lambda_powertools import Logger

from pipelinejobs.local.functions import FunctionInstance, FunctionSpec
from pipelinejobs.local.stack import _LoggingState

HANDLER = """
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit

metrics = Metrics(namespace="PipelineJobsTest", service="output-test")


@metrics.log_metrics
def handler(event, context):
    metrics.add_metric(name="Calls", unit=MetricUnit.Count, value=1)
    return {"ok": True}
"""


def test_a_function_with_metrics_off_prints_no_metric_however_often_it_is_called(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given a function that adds one metric per call, run with metrics off (as the local stack runs it)
    (tmp_path / "metric_handler.py").write_text(textwrap.dedent(HANDLER))
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    spec = FunctionSpec("MetricFunction", tmp_path, "metric_handler.handler", timeout=3, memory_size=128)
    instance = FunctionInstance(spec, stack_name="output-test")
    capsys.readouterr()
    # when it is called past Powertools' 100 values per metric
    results = [instance.invoke({}) for _ in range(250)]
    # then every call answered, and nothing was printed
    assert all(result.error is None and result.response == {"ok": True} for result in results)
    assert capsys.readouterr().out == ""
    instance.unload()


def test_the_stacks_functions_configure_their_own_logger_and_the_earlier_one_comes_back(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = f"svc-{uuid.uuid4().hex[:8]}"
    # given a Powertools logger of the service, configured earlier in the process at INFO
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "INFO")
    earlier = Logger(service=service)
    earlier_logger = logging.getLogger(service)
    assert earlier_logger.level == logging.INFO
    # when a stack starts and its function makes a Logger of the same service under the stack's level
    state = _LoggingState.capture()
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "WARNING")
    Logger(service=service)
    # then the function's logger is its own, at the stack's level
    during = logging.getLogger(service)
    assert during is not earlier_logger
    assert during.level == logging.WARNING
    # and when the stack stops, the earlier logger is back as it was, and the function's is forgotten
    state.restore()
    assert logging.getLogger(service) is earlier_logger
    assert earlier_logger.level == logging.INFO and earlier.log_level == logging.INFO
    assert not during.handlers
