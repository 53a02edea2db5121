"""The admin key, from SSM Parameter Store (SecureString), cached by Powertools' parameters utility."""

from __future__ import annotations

from typing import Any

from jobcore.errors import TransientError


class SsmAdminKeys:
    def __init__(self, parameter_name: str, ssm: Any = None, max_age: int = 300) -> None:
        from aws_lambda_powertools.utilities.parameters import SSMProvider

        self.parameter_name = parameter_name
        self.max_age = max_age
        self._provider = SSMProvider(boto3_client=ssm) if ssm is not None else SSMProvider()

    def key(self) -> str:
        from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError

        try:
            value = self._provider.get(self.parameter_name, decrypt=True, max_age=self.max_age)
        except GetParameterError as error:
            # Never include the value; the name is not a secret.
            raise TransientError(f"cannot read the admin key parameter {self.parameter_name}") from error
        return str(value)


class StaticAdminKeys:
    """A fixed admin key (the local stack's, and tests')."""

    def __init__(self, key: str) -> None:
        self._key = key

    def key(self) -> str:
        return self._key
