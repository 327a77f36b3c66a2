"""Generate one billing month (2024-03) of a realistic legacy CUR ("v1") export, in the real S3 layout.

    .venv/bin/python bench/gen_month.py --rows 1000000 --files 4 --out bench/.data/month-1m

Writes, under ``--out`` (a folder that mirrors the bucket: the object with key K is ``<out>/K``)::

    cur/bench-cur/20240301-20240401/bench-cur-Manifest.json               <- latest assembly
    cur/bench-cur/20240301-20240401/<assemblyId>/bench-cur-Manifest.json
    cur/bench-cur/20240301-20240401/<assemblyId>/bench-cur-00001.csv.gz ... -0000N.csv.gz

plus, outside ``cur/`` (not part of the bucket): ``expected.json`` (row count and exact cost
sums) and ``.bench-stamp.json`` (what was generated; a rerun with the same parameters, the same
generator source and the same DuckDB version does nothing).

The rows are built by DuckDB SQL over ``range(N)`` (no Python row loop) and written with
``COPY ... TO 'x.csv.gz' (HEADER, COMPRESSION gzip)``, several files at once (each COPY
compresses on one thread). Every column of ``shared/docs/cur1_columns.csv`` is in the header, in
that file's order, as ``category/Name``, except ``savingsPlan/SavingsPlanArn`` (see ``DROPPED``);
14 sparse ``resourceTags/...`` columns follow (real exports put the tags the payer activated at
the end): 192 + 14 = 206 columns. Values follow the real anonymised sample in ``shared/samples/focus-converters-cur-v1``:
12-digit accounts, 52-character line item ids, ARNs and instance/volume ids, region-prefixed
usage types, hourly ``YYYY-MM-DDTHH:MM:SS.000Z`` usage dates, ``start/end`` time intervals with
``...Z``, costs and quantities as plain decimal text with up to 10 decimal places
(``0.0000000186``), empty strings for empty numerics, negative costs on SavingsPlanNegation and
Credit rows, quoted descriptions that contain commas.

The output is deterministic for a given seed, row and file count and DuckDB version (same bytes,
same MD5s). Money is generated as integers of 1e-10 USD, so every value has at most 10 decimals
and is printed exactly; ``expected.json`` (which also lists each data file's size and MD5) sums the *text read back from the written files* as DECIMAL(38,18),
which is exact for such values, and the generator cross-checks that sum against the integer sum
of what it generated.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import random
import shutil
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import duckdb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
COLUMNS_CSV = REPO.parent / "shared" / "docs" / "cur1_columns.csv"
STAMP = ".bench-stamp.json"
SCALE = 10**10  # money and quantities are integers of 1e-10
PERIOD = "2024-03"
PERIOD_START, PERIOD_END = "2024-03-01", "2024-04-01"
HOURS = 31 * 24

# Sparse resource tags appended after the dictionary's columns: (column, % of resources that carry it).
# A tag is a property of the resource: every line item of a tagged resource carries it.
TAGS = (
    ("resourceTags/aws:autoscaling:groupName", 25),
    ("resourceTags/aws:cloudformation:logical-id", 40),
    ("resourceTags/aws:cloudformation:stack-id", 40),
    ("resourceTags/aws:cloudformation:stack-name", 40),
    ("resourceTags/aws:createdBy", 20),
    ("resourceTags/user:Application", 15),
    ("resourceTags/user:CostCenter", 45),
    ("resourceTags/user:Environment", 60),
    ("resourceTags/user:GitCommit", 35),
    ("resourceTags/user:Name", 60),
    ("resourceTags/user:Owner", 50),
    ("resourceTags/user:Project", 30),
    ("resourceTags/user:Team", 50),
    ("resourceTags/user:Version", 20),
)

# The dictionary lists both spellings of the Savings Plan ARN column: "SavingsPlanARN" (a real
# CUR header) and "SavingsPlanArn" (AWS's 2021 data dictionary and a synthetic header). A real
# file carries one; the two differ only in case, so SQL engines (DuckDB included) cannot even hold
# both as columns of one table. The file keeps the real spelling.
DROPPED = {"savingsPlan/SavingsPlanArn"}

# Manifest types for the dictionary's columns that have none there.
_BLANK_TYPES = {
    "savingsPlan/AmortizedUpfrontCommitmentForBillingPeriod": "OptionalBigDecimal",
    "savingsPlan/RecurringCommitmentForBillingPeriod": "OptionalBigDecimal",
    "savingsPlan/SavingsPlanEffectiveCost": "OptionalBigDecimal",
    "savingsPlan/TotalCommitmentToDate": "OptionalBigDecimal",
    "savingsPlan/UsedCommitment": "OptionalBigDecimal",
    "reservation/NumberOfReservations": "OptionalString",
}

# ---- regions ------------------------------------------------------------------------------------
# (code, price-list location, usage-type prefix, price factor %, share %)
REGIONS = (
    ("us-east-1", "US East (N. Virginia)", "", 100, 45),
    ("us-west-2", "US West (Oregon)", "USW2-", 100, 20),
    ("eu-west-1", "EU (Ireland)", "EU-", 107, 12),
    ("eu-central-1", "EU (Frankfurt)", "EUC1-", 115, 8),
    ("ap-northeast-1", "Asia Pacific (Tokyo)", "APN1-", 125, 5),
    ("ap-southeast-2", "Asia Pacific (Sydney)", "APS2-", 124, 4),
    ("ca-central-1", "Canada (Central)", "CAN1-", 110, 4),
    ("sa-east-1", "South America (Sao Paulo)", "SAE1-", 155, 2),
)

# ---- product templates ----------------------------------------------------------------------------
# Each template is one kind of line item. Keys:
#   w      weight (relative share of rows)
#   code   lineItem/ProductCode        ut   usage type without region prefix      op  operation
#   desc   description ({rate} is replaced by the regional rate)
#   unit   pricing/unit                rate public on-demand rate (decimal text)
#   amt    quantity kind: hour | gbmo | gb | count | gbsec | one | prorate
#   cost   rate (amount x rate) | tax | credit
#   lt     line item type for plain rows (Usage, Tax, Credit, Fee)
#   res    resource id pattern ({r} region, {a} account, {x} 16 hex, {u} uuid, {n} number), None: no id
#   pool   distinct resources per account and template
#   az     resources live in an availability zone
#   glob   global service: no region columns, no usage-type prefix
#   sp/ri  line items can be Savings Plan covered / reserved (DiscountedUsage)
#   nf     lineItem/NormalizationFactor
#   p      product/* attributes


def _ec2(it, family, vcpu, mem, nf, rate, proc, net, clock="3.1 GHz", os_="Linux", w=2.5, gpu=False):
    win = os_ == "Windows"
    arm = "Graviton" in proc
    return dict(
        w=w, code="AmazonEC2", ut=f"BoxUsage:{it}", op="RunInstances:0002" if win else "RunInstances",
        desc=f"${{rate}} per On Demand {os_} {it} Instance Hour", unit="Hrs", rate=rate, amt="hour",
        res="i-0{x}", pool=4000, az=True, sp=True, ri=True, nf=nf,
        p=dict(ProductName="Amazon Elastic Compute Cloud", productFamily="Compute Instance",
               servicecode="AmazonEC2", servicename="Amazon Elastic Compute Cloud", instanceType=it,
               instanceFamily=family, instanceTypeFamily=it.split(".")[0], vcpu=str(vcpu), memory=mem,
               clockSpeed=None if arm else clock, currentGeneration="Yes", physicalProcessor=proc,
               processorArchitecture="64-bit", networkPerformance=net, storage="EBS only",
               tenancy="Shared", operatingSystem=os_,
               licenseModel="License included" if win else "No License required", preInstalledSw="NA",
               capacitystatus="Used", marketoption="OnDemand", dedicatedEbsThroughput="Up to 4750 Mbps",
               ebsOptimized="Yes", enhancedNetworkingSupported="Yes", ecu="NA" if arm else str(vcpu * 4),
               intelAvxAvailable=None if arm else "Yes", intelAvx2Available=None if arm else "Yes",
               intelTurboAvailable=None if arm else "Yes",
               processorFeatures="AWS Graviton2" if arm else "Intel AVX; Intel AVX2; Intel AVX512; Intel Turbo",
               normalizationSizeFactor=str(nf), classicnetworkingsupport="false",
               vpcnetworkingsupport="true", gpu="1" if gpu else None,
               operation="RunInstances:0002" if win else "RunInstances",
               locationType="AWS Region"))


def _ebs(api, vtype, rate, media="SSD-backed", w=3.0, ut=None, unit="GB-Mo"):
    return dict(
        w=w, code="AmazonEC2", ut=ut or f"EBS:VolumeUsage.{api}", op=f"CreateVolume-{api.capitalize()}",
        desc=f"${{rate}} per GB-month of {vtype} ({api}) provisioned storage - {{loc}}", unit=unit,
        rate=rate, amt="gbmo", res="vol-0{x}", pool=6000, az=True,
        p=dict(ProductName="Amazon Elastic Compute Cloud", productFamily="Storage", servicecode="AmazonEC2",
               servicename="Amazon Elastic Compute Cloud", volumeApiName=api, volumeType=vtype,
               storageMedia=media, maxVolumeSize="16 TiB", maxIopsvolume="16000",
               maxThroughputvolume="1000 MiB/s", maxIopsBurstPerformance="3000 for volumes <= 1 TiB",
               provisioned="Yes", platovolumetype=None, locationType="AWS Region"))


TEMPLATES = [
    # -- EC2 instances (about a third of the rows of a typical account)
    _ec2("t3.micro", "General purpose", 2, "1 GiB", 0.5, "0.0104", "Intel Skylake E5 2686 v5", "Up to 5 Gigabit", "2.5 GHz", w=3),
    _ec2("t3.medium", "General purpose", 2, "4 GiB", 2, "0.0416", "Intel Skylake E5 2686 v5", "Up to 5 Gigabit", "2.5 GHz", w=3),
    _ec2("m5.large", "General purpose", 2, "8 GiB", 4, "0.096", "Intel Xeon Platinum 8175", "Up to 10 Gigabit", w=4),
    _ec2("m5.xlarge", "General purpose", 4, "16 GiB", 8, "0.192", "Intel Xeon Platinum 8175", "Up to 10 Gigabit", w=3),
    _ec2("m5.2xlarge", "General purpose", 8, "32 GiB", 16, "0.384", "Intel Xeon Platinum 8175", "Up to 10 Gigabit"),
    _ec2("m5.large", "General purpose", 2, "8 GiB", 4, "0.188", "Intel Xeon Platinum 8175", "Up to 10 Gigabit", os_="Windows", w=1),
    _ec2("m6i.xlarge", "General purpose", 4, "16 GiB", 8, "0.192", "Intel Xeon 8375C (Ice Lake)", "Up to 12500 Megabit", "3.5 GHz"),
    _ec2("m6g.large", "General purpose", 2, "8 GiB", 4, "0.077", "AWS Graviton2 Processor", "Up to 10 Gigabit"),
    _ec2("c5.xlarge", "Compute optimized", 4, "8 GiB", 8, "0.17", "Intel Xeon Platinum 8124M", "Up to 10 Gigabit", "3.4 GHz"),
    _ec2("c5.4xlarge", "Compute optimized", 16, "32 GiB", 32, "0.68", "Intel Xeon Platinum 8124M", "Up to 10 Gigabit", "3.4 GHz", w=1.5),
    _ec2("r5.large", "Memory optimized", 2, "16 GiB", 4, "0.126", "Intel Xeon Platinum 8175", "Up to 10 Gigabit"),
    _ec2("r5.2xlarge", "Memory optimized", 8, "64 GiB", 16, "0.504", "Intel Xeon Platinum 8175", "Up to 10 Gigabit", w=1.5),
    _ec2("g4dn.xlarge", "GPU instance", 4, "16 GiB", 8, "0.526", "Intel Xeon Family", "Up to 25 Gigabit", "2.5 GHz", w=0.5, gpu=True),
    # -- EBS
    _ebs("gp3", "General Purpose", "0.08", w=6),
    _ebs("gp2", "General Purpose", "0.10", w=4),
    _ebs("io1", "Provisioned IOPS", "0.125", w=1),
    dict(w=1, code="AmazonEC2", ut="EBS:VolumeP-IOPS.piops", op="CreateVolume-P-IOPS",
         desc="${rate} per IOPS-month provisioned - {loc}", unit="IOPS-Mo", rate="0.065", amt="gbmo",
         res="vol-0{x}", pool=600, az=True,
         p=dict(ProductName="Amazon Elastic Compute Cloud", productFamily="System Operation", servicecode="AmazonEC2",
                servicename="Amazon Elastic Compute Cloud", group="EBS IOPS", groupDescription="IOPS",
                volumeApiName="io1", provisioned="Yes", locationType="AWS Region")),
    dict(w=3, code="AmazonEC2", ut="EBS:SnapshotUsage", op="CreateSnapshot",
         desc="${rate} per GB-Month of snapshot data stored - {loc}", unit="GB-Mo", rate="0.05", amt="gbmo",
         res="arn:aws:ec2:{r}:{a}:snapshot/snap-0{x}", pool=8000,
         p=dict(ProductName="Amazon Elastic Compute Cloud", productFamily="Storage Snapshot", servicecode="AmazonEC2",
                servicename="Amazon Elastic Compute Cloud", storageMedia="Amazon S3", usageFamily=None,
                locationType="AWS Region")),
    # -- data transfer, NAT, IPs, load balancers
    dict(w=5, code="AmazonEC2", ut="DataTransfer-Out-Bytes", op="RunInstances",
         desc="${rate} per GB - first 10 TB / month data transfer out beyond the global free tier", unit="GB",
         rate="0.09", amt="gb", res="i-0{x}", pool=4000,
         p=dict(ProductName="AWS Data Transfer", productFamily="Data Transfer", servicecode="AWSDataTransfer",
                servicename="AWS Data Transfer", fromLocation="{loc}", fromLocationType="AWS Region",
                fromRegionCode="{r}", toLocation="External", toLocationType="Other",
                transferType="AWS Outbound")),
    dict(w=4, code="AmazonEC2", ut="DataTransfer-Regional-Bytes", op="InterZone-In",
         desc="${rate} per GB - regional data transfer - in/out/between EC2 AZs or using elastic IPs or ELB",
         unit="GB", rate="0.01", amt="gb", res="i-0{x}", pool=4000,
         p=dict(ProductName="AWS Data Transfer", productFamily="Data Transfer", servicecode="AWSDataTransfer",
                servicename="AWS Data Transfer", fromLocation="{loc}", fromLocationType="AWS Region",
                fromRegionCode="{r}", toLocation="{loc}", toLocationType="AWS Region", toRegionCode="{r}",
                transferType="IntraRegion")),
    dict(w=2, code="AmazonEC2", ut="USE1-USW2-AWS-Out-Bytes", op="PublicIP-Out", glob=True,
         desc="${rate} per GB - US East (Northern Virginia) data transfer to US West (Oregon)", unit="GB",
         rate="0.02", amt="gb", res="i-0{x}", pool=1000,
         p=dict(ProductName="AWS Data Transfer", productFamily="Data Transfer", servicecode="AWSDataTransfer",
                servicename="AWS Data Transfer", fromLocation="US East (N. Virginia)", fromLocationType="AWS Region",
                fromRegionCode="us-east-1", toLocation="US West (Oregon)", toLocationType="AWS Region",
                toRegionCode="us-west-2", transferType="InterRegion Outbound", region="us-east-1")),
    dict(w=2, code="AmazonEC2", ut="NatGateway-Hours", op="NatGateway",
         desc="${rate} per NAT Gateway Hour", unit="Hrs", rate="0.045", amt="hour",
         res="arn:aws:ec2:{r}:{a}:natgateway/nat-0{x}", pool=40,
         p=dict(ProductName="Amazon Elastic Compute Cloud", productFamily="NAT Gateway", servicecode="AmazonEC2",
                servicename="Amazon Elastic Compute Cloud", group="NGW:NatGateway",
                groupDescription="Hourly charge for NAT Gateways", locationType="AWS Region")),
    dict(w=2, code="AmazonEC2", ut="NatGateway-Bytes", op="NatGateway",
         desc="${rate} per GB Data Processed by NAT Gateways", unit="GB", rate="0.045", amt="gb",
         res="arn:aws:ec2:{r}:{a}:natgateway/nat-0{x}", pool=40,
         p=dict(ProductName="Amazon Elastic Compute Cloud", productFamily="NAT Gateway", servicecode="AmazonEC2",
                servicename="Amazon Elastic Compute Cloud", group="NGW:NatGateway",
                groupDescription="Charge for per GB data processed by NatGateways", locationType="AWS Region")),
    dict(w=3, code="AmazonVPC", ut="PublicIPv4:InUseAddress", op="AssociateAddressVPC",
         desc="${rate} per In-use public IPv4 address per hour", unit="Hrs", rate="0.005", amt="hour",
         res="arn:aws:ec2:{r}:{a}:ipv4pool-ec2/ipv4pool-ec2-0{x}", pool=500,
         p=dict(ProductName="Amazon Virtual Private Cloud", productFamily="VpcPublicIpv4Address",
                servicecode="AmazonVPC", servicename="Amazon Virtual Private Cloud", group="VPCPublicIPv4Address",
                groupDescription="Hourly charge for In-use Public IPv4 Addresses", locationType="AWS Region")),
    dict(w=1.5, code="AWSELB", ut="LoadBalancerUsage", op="LoadBalancing:Application",
         desc="${rate} per Application LoadBalancer-hour (or partial hour)", unit="Hrs", rate="0.0225", amt="hour",
         res="arn:aws:elasticloadbalancing:{r}:{a}:loadbalancer/app/alb-{n}/{x}", pool=60,
         p=dict(ProductName="Elastic Load Balancing", productFamily="Load Balancer-Application",
                servicecode="AWSELB", servicename="Elastic Load Balancing", group="ELB:Balancer",
                groupDescription="LoadBalancer hourly usage by Application Load Balancer",
                operation="LoadBalancing:Application", locationType="AWS Region")),
    dict(w=1.5, code="AWSELB", ut="LCUUsage", op="LoadBalancing:Application",
         desc="${rate} per used Application load balancer capacity unit-hour (or partial hour)", unit="LCU-Hrs",
         rate="0.008", amt="gb", res="arn:aws:elasticloadbalancing:{r}:{a}:loadbalancer/app/alb-{n}/{x}", pool=60,
         p=dict(ProductName="Elastic Load Balancing", productFamily="Load Balancer-Application",
                servicecode="AWSELB", servicename="Elastic Load Balancing", group="ELB:Balancer",
                groupDescription="Used Application load balancer capacity units-hr", locationType="AWS Region")),
    # -- S3
    dict(w=5, code="AmazonS3", ut="TimedStorage-ByteHrs", op="StandardStorage",
         desc="${rate} per GB - first 50 TB / month of storage used", unit="GB-Mo", rate="0.023", amt="gb",
         res="{a}-data-{n}", pool=300,
         p=dict(ProductName="Amazon Simple Storage Service", productFamily="Storage", servicecode="AmazonS3",
                servicename="Amazon Simple Storage Service", storageClass="General Purpose", volumeType="Standard",
                availability="99.99%", durability="99.999999999%", locationType="AWS Region")),
    dict(w=3, code="AmazonS3", ut="Requests-Tier1", op="PutObject",
         desc="${rate} per 1,000 PUT, COPY, POST, or LIST requests", unit="Requests", rate="0.000005", amt="count",
         res="{a}-data-{n}", pool=300,
         p=dict(ProductName="Amazon Simple Storage Service", productFamily="API Request", servicecode="AmazonS3",
                servicename="Amazon Simple Storage Service", group="S3-API-Tier1",
                groupDescription="PUT/COPY/POST or LIST requests", locationType="AWS Region")),
    dict(w=3, code="AmazonS3", ut="Requests-Tier2", op="GetObject",
         desc="${rate} per 10,000 GET and all other requests", unit="Requests", rate="0.0000004", amt="count",
         res="{a}-data-{n}", pool=300,
         p=dict(ProductName="Amazon Simple Storage Service", productFamily="API Request", servicecode="AmazonS3",
                servicename="Amazon Simple Storage Service", group="S3-API-Tier2",
                groupDescription="GET and all other requests", locationType="AWS Region")),
    dict(w=1, code="AmazonS3", ut="TimedStorage-INT-FA-ByteHrs", op="IntelligentTieringFAStorage",
         desc="${rate} per GB - first 50 TB / month of storage used - Frequent Access Tier", unit="GB-Mo",
         rate="0.023", amt="gb", res="{a}-archive-{n}", pool=100,
         p=dict(ProductName="Amazon Simple Storage Service", productFamily="Storage", servicecode="AmazonS3",
                servicename="Amazon Simple Storage Service", storageClass="Intelligent-Tiering",
                volumeType="Intelligent-Tiering Frequent Access", availability="99.9%",
                durability="99.999999999%", locationType="AWS Region")),
    # -- RDS
    dict(w=2.5, code="AmazonRDS", ut="InstanceUsage:db.r5.large", op="CreateDBInstance:0014",
         desc="${rate} per RDS db.r5.large Single-AZ instance hour (or partial hour) running PostgreSQL",
         unit="Hrs", rate="0.25", amt="hour", res="arn:aws:rds:{r}:{a}:db:pg-{n}", pool=80, az=True, ri=True,
         nf=4,
         p=dict(ProductName="Amazon Relational Database Service", productFamily="Database Instance",
                servicecode="AmazonRDS", servicename="Amazon Relational Database Service",
                instanceType="db.r5.large", instanceFamily="Memory optimized", instanceTypeFamily="r5", vcpu="2",
                memory="16 GiB", databaseEngine="PostgreSQL", engineCode="14", deploymentOption="Single-AZ",
                licenseModel="No license required", currentGeneration="Yes", networkPerformance="Up to 10 Gigabit",
                physicalProcessor="Intel Xeon Platinum 8175", processorArchitecture="64-bit", storage="EBS Only",
                normalizationSizeFactor="4", locationType="AWS Region")),
    dict(w=1, code="AmazonRDS", ut="Multi-AZUsage:db.m5.xlarge", op="CreateDBInstance:0016",
         desc="${rate} per RDS db.m5.xlarge Multi-AZ instance hour (or partial hour) running Aurora MySQL",
         unit="Hrs", rate="0.712", amt="hour", res="arn:aws:rds:{r}:{a}:db:mysql-{n}", pool=30, ri=True, nf=16,
         p=dict(ProductName="Amazon Relational Database Service", productFamily="Database Instance",
                servicecode="AmazonRDS", servicename="Amazon Relational Database Service",
                instanceType="db.m5.xlarge", instanceFamily="General purpose", instanceTypeFamily="m5", vcpu="4",
                memory="16 GiB", databaseEngine="Aurora MySQL", engineCode="16", deploymentOption="Multi-AZ",
                licenseModel="No license required", currentGeneration="Yes", networkPerformance="Up to 10 Gigabit",
                normalizationSizeFactor="16", locationType="AWS Region")),
    dict(w=2, code="AmazonRDS", ut="RDS:GP2-Storage", op="CreateDBInstance:0014",
         desc="${rate} per GB-month of provisioned GP2 storage running PostgreSQL", unit="GB-Mo", rate="0.115",
         amt="gbmo", res="arn:aws:rds:{r}:{a}:db:pg-{n}", pool=80,
         p=dict(ProductName="Amazon Relational Database Service", productFamily="Database Storage",
                servicecode="AmazonRDS", servicename="Amazon Relational Database Service",
                databaseEngine="PostgreSQL", deploymentOption="Single-AZ", volumeType="General Purpose",
                storageMedia="SSD", usagetype=None, minVolumeSize="20 GiB", maxVolumeSize="64 TiB",
                locationType="AWS Region")),
    # -- serverless and managed services
    dict(w=4, code="AWSLambda", ut="Lambda-GB-Second", op="Invoke",
         desc="AWS Lambda - Total Compute - {loc}", unit="Lambda-GB-Second", rate="0.0000166667", amt="gbsec",
         res="arn:aws:lambda:{r}:{a}:function:svc-{n}-handler", pool=400, sp=True,
         p=dict(ProductName="AWS Lambda", productFamily="Serverless", servicecode="AWSLambda",
                servicename="AWS Lambda", group="AWS-Lambda-Duration", groupDescription="Invocation duration",
                locationType="AWS Region")),
    dict(w=3, code="AWSLambda", ut="Request", op="Invoke",
         desc="AWS Lambda - Total Requests - {loc}", unit="Requests", rate="0.0000002", amt="count",
         res="arn:aws:lambda:{r}:{a}:function:svc-{n}-handler", pool=400,
         p=dict(ProductName="AWS Lambda", productFamily="Serverless", servicecode="AWSLambda",
                servicename="AWS Lambda", group="AWS-Lambda-Requests", groupDescription="Invocation call for a Lambda function",
                locationType="AWS Region")),
    dict(w=2, code="AmazonCloudWatch", ut="CW:MetricMonitorUsage", op="MetricStorage",
         desc="${rate} per metric-month - first 10,000 metrics - {loc}", unit="Metrics", rate="0.3", amt="prorate",
         res=None, pool=1,
         p=dict(ProductName="AmazonCloudWatch", productFamily="Metric", servicecode="AmazonCloudWatch",
                servicename="AmazonCloudWatch", group="Metric", groupDescription="Metric", locationType="AWS Region")),
    dict(w=2, code="AmazonCloudWatch", ut="DataProcessing-Bytes", op="PutLogEvents",
         desc="${rate} per GB custom log data ingested - {loc}", unit="GB", rate="0.5", amt="gb",
         res="arn:aws:logs:{r}:{a}:log-group:/aws/lambda/svc-{n}-handler", pool=400,
         p=dict(ProductName="AmazonCloudWatch", productFamily="Data Payload", servicecode="AmazonCloudWatch",
                servicename="AmazonCloudWatch", group="Ingested Logs", groupDescription="Existing system, application, and custom log files",
                locationType="AWS Region")),
    dict(w=1.5, code="AmazonDynamoDB", ut="ReadRequestUnits", op="GetItem",
         desc="${rate} per 1 million read request units - {loc}", unit="ReadRequestUnits", rate="0.00000025",
         amt="count", res="arn:aws:dynamodb:{r}:{a}:table/orders-{n}", pool=50,
         p=dict(ProductName="Amazon DynamoDB", productFamily="Amazon DynamoDB PayPerRequest Throughput",
                servicecode="AmazonDynamoDB", servicename="Amazon DynamoDB", group="DDB-ReadUnits",
                groupDescription="DynamoDB PayPerRequest Read Request Units", locationType="AWS Region")),
    dict(w=1.5, code="AmazonDynamoDB", ut="WriteRequestUnits", op="PutItem",
         desc="${rate} per 1 million write request units - {loc}", unit="WriteRequestUnits", rate="0.00000125",
         amt="count", res="arn:aws:dynamodb:{r}:{a}:table/orders-{n}", pool=50,
         p=dict(ProductName="Amazon DynamoDB", productFamily="Amazon DynamoDB PayPerRequest Throughput",
                servicecode="AmazonDynamoDB", servicename="Amazon DynamoDB", group="DDB-WriteUnits",
                groupDescription="DynamoDB PayPerRequest Write Request Units", locationType="AWS Region")),
    dict(w=1, code="AmazonDynamoDB", ut="TimedStorage-ByteHrs", op="StandardStorage",
         desc="${rate} per GB-Month of storage used beyond first 25 free GB-Months", unit="GB-Mo", rate="0.25",
         amt="gb", res="arn:aws:dynamodb:{r}:{a}:table/orders-{n}", pool=50,
         p=dict(ProductName="Amazon DynamoDB", productFamily="Database Storage", servicecode="AmazonDynamoDB",
                servicename="Amazon DynamoDB", storageMedia="SSD-backed", volumeType="Amazon DynamoDB - Indexed DataStore",
                locationType="AWS Region")),
    dict(w=1, code="AWSQueueService", ut="Requests-RBP", op="SendMessage",
         desc="${rate} per Requests-RBP", unit="Requests", rate="0.0000004", amt="count",
         res="arn:aws:sqs:{r}:{a}:jobs-{n}", pool=60,
         p=dict(ProductName="Amazon Simple Queue Service", productFamily="API Request", servicecode="AWSQueueService",
                servicename="Amazon Simple Queue Service", group="SQS-APIRequest-Tier1",
                groupDescription="Amazon SQS Requests", queueType="Standard", messageDeliveryFrequency="At Least Once",
                messageDeliveryOrder="Not Guaranteed", locationType="AWS Region")),
    dict(w=1, code="awskms", ut="KMS-Requests", op="Decrypt",
         desc="${rate} per request - {loc}", unit="Requests", rate="0.000003", amt="count",
         res="arn:aws:kms:{r}:{a}:key/{u}", pool=40,
         p=dict(ProductName="AWS Key Management Service", productFamily="Encryption Key", servicecode="awskms",
                servicename="AWS Key Management Service", group="KMS-Requests", locationType="AWS Region")),
    dict(w=0.5, code="awskms", ut="KMS-Keys", op="CreateKey",
         desc="${rate} per customer managed key per month - {loc}", unit="Keys", rate="1", amt="prorate",
         res="arn:aws:kms:{r}:{a}:key/{u}", pool=40,
         p=dict(ProductName="AWS Key Management Service", productFamily="Encryption Key", servicecode="awskms",
                servicename="AWS Key Management Service", group="KMS-Keys", locationType="AWS Region")),
    dict(w=1, code="AmazonEKS", ut="AmazonEKS-Hours:perCluster", op="CreateOperation",
         desc="Amazon EKS cluster usage in {loc}", unit="Hours", rate="0.1", amt="hour",
         res="arn:aws:eks:{r}:{a}:cluster/k8s-{n}", pool=6,
         p=dict(ProductName="Amazon Elastic Container Service for Kubernetes", productFamily="Compute",
                servicecode="AmazonEKS", servicename="Amazon Elastic Container Service for Kubernetes",
                tenancy="Shared", locationType="AWS Region")),
    dict(w=0.5, code="AmazonECR", ut="TimedStorage-ByteHrs", op="",
         desc="${rate} per GB-month of data storage", unit="GB-Mo", rate="0.1", amt="gb",
         res="arn:aws:ecr:{r}:{a}:repository/app-{n}", pool=80,
         p=dict(ProductName="Amazon EC2 Container Registry (ECR)", productFamily="EC2 Container Registry",
                servicecode="AmazonECR", servicename="Amazon EC2 Container Registry (ECR)", locationType="AWS Region")),
    dict(w=0.5, code="AmazonApiGateway", ut="ApiGatewayRequest", op="ApiGatewayRequest",
         desc="${rate} per request (REST API) - first 333 million requests/month", unit="Requests", rate="0.0000035",
         amt="count", res="arn:aws:apigateway:{r}::/restapis/{x}", pool=30,
         p=dict(ProductName="Amazon API Gateway", productFamily="API Calls", servicecode="AmazonApiGateway",
                servicename="Amazon API Gateway", description="HTTP API Requests", iswebsocket="false",
                locationType="AWS Region")),
    dict(w=0.3, code="AmazonApiGateway", ut="ApiGatewayMessage", op="ApiGatewayWebSocket",
         desc="${rate} per message for WebSocket APIs", unit="Messages", rate="0.000001", amt="count",
         res="arn:aws:apigateway:{r}::/apis/{x}", pool=10,
         p=dict(ProductName="Amazon API Gateway", productFamily="WebSocket", servicecode="AmazonApiGateway",
                servicename="Amazon API Gateway", description="WebSocket Messages", iswebsocket="true",
                locationType="AWS Region")),
    dict(w=0.2, code="AWSDirectoryService", ut="MicrosoftAD-DC-Usage", op="",
         desc="${rate} per Microsoft AD Standard Edition Domain Controller Hour", unit="Hrs", rate="0.06", amt="hour",
         res="arn:aws:ds:{r}:{a}:directory/d-{x}", pool=2,
         p=dict(ProductName="AWS Directory Service", productFamily="AWS Directory Service",
                servicecode="AWSDirectoryService", servicename="AWS Directory Service", directorySize="Standard",
                directoryType="Microsoft AD", directoryTypeDescription="Managed Microsoft Active Directory",
                edition="Standard", locationType="AWS Region")),
    # -- global services
    dict(w=0.5, code="AmazonRoute53", ut="DNS-Queries", op="", glob=True,
         desc="${rate} per 1 million queries for the first 1 billion queries", unit="Queries", rate="0.0000004",
         amt="count", res="arn:aws:route53:::hostedzone/Z0{x}", pool=20,
         p=dict(ProductName="Amazon Route 53", productFamily="DNS Query", servicecode="AmazonRoute53",
                servicename="Amazon Route 53", routingTarget="Standard", routingType="Standard",
                locationType="Global", location="Global")),
    dict(w=1, code="AmazonCloudFront", ut="US-DataTransfer-Out-Bytes", op="GET", glob=True,
         desc="${rate} per GB - first 10 TB / month data transfer out (United States)", unit="GB", rate="0.085",
         amt="gb", res="arn:aws:cloudfront::{a}:distribution/E{x}", pool=20,
         p=dict(ProductName="Amazon CloudFront", productFamily="Data Transfer", servicecode="AmazonCloudFront",
                servicename="Amazon CloudFront", fromLocation="United States", fromLocationType="Other",
                toLocation="External", transferType="CloudFront Outbound", origin="S3", recipient="Internet",
                contentType="Unknown", resourceEndpoint=None, locationType="Other", location="United States")),
    dict(w=0.5, code="AmazonCloudFront", ut="US-Requests-Tier1", op="GET", glob=True,
         desc="${rate} per 10,000 HTTP Requests", unit="Requests", rate="0.0000075", amt="count",
         res="arn:aws:cloudfront::{a}:distribution/E{x}", pool=20,
         p=dict(ProductName="Amazon CloudFront", productFamily="Request", servicecode="AmazonCloudFront",
                servicename="Amazon CloudFront", requestType="CloudFront-Request-HTTP-Proxy",
                requestDescription="HTTP requests", locationType="Other", location="United States")),
    # -- fees, tax, credits (rare)
    dict(w=0.005, code="AWSSupportBusiness", ut="Dollar", op="", glob=True, lt="Fee",
         desc="AWS Support (Business)", unit="Dollar", rate="1250.47", amt="one", res=None, pool=1,
         p=dict(ProductName="AWS Support (Business)", productFamily="AWS Support", servicecode="AWSSupportBusiness",
                servicename="AWS Support (Business)", accountAssistance="Concierge Service", architecturalReview="No",
                architectureSupport="Contextual to your use-cases", bestPractices="Yes",
                caseSeverityresponseTimes="Production system down: < 1 hour", customerServiceAndCommunities="Yes",
                includedServices="AWS Trusted Advisor", launchSupport="Infrastructure Event Management for additional fee",
                operationsSupport="Yes", proactiveGuidance="No", programmaticCaseManagement="AWS Support API",
                technicalSupport="Phone, Chat, Email", thirdpartySoftwareSupport="Yes", training="No",
                whoCanOpenCases="Unlimited contacts", subscriptionType="Business", feeCode="AWSSupportBusiness",
                feeDescription="AWS Support (Business)", locationType="Global", location="Any")),
    dict(w=0.05, code="AmazonEC2", ut="", op="", glob=True, lt="Tax", cost="tax",
         desc="Tax for product code AmazonEC2", unit=None, rate=None, amt="one", res=None, pool=1,
         p=dict(ProductName="Amazon Elastic Compute Cloud")),
    dict(w=0.05, code="AmazonS3", ut="", op="", glob=True, lt="Credit", cost="credit",
         desc="AWS Activate Credits", unit=None, rate=None, amt="one", res=None, pool=1,
         p=dict(ProductName="Amazon Simple Storage Service")),
]



# ---- helpers ----------------------------------------------------------------------------------------
def q(v) -> str:
    "A SQL literal."
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int,)):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def lst(values) -> str:
    "A SQL list literal of the given Python values."
    return "[" + ", ".join(q(v) for v in values) + "]"


def units(text) -> int | None:
    "Decimal text -> integer of 1e-10, exactly."
    if text is None:
        return None
    d = Decimal(text) * SCALE
    assert d == d.to_integral_value(), text
    return int(d)


def read_columns():
    "[(csv name, manifest type)] from the dictionary, in its order, then the tag columns."
    with open(COLUMNS_CSV, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    cols = [(r["cur1_csv_name"], r["manifest_type"] or _BLANK_TYPES.get(r["cur1_csv_name"], "OptionalString"))
            for r in rows if r["cur1_csv_name"] not in DROPPED]
    names = [c for c, _ in cols]
    assert len(set(names)) == len(names), "duplicate columns in the dictionary"
    return cols + [(t, "OptionalString") for t, _ in TAGS]


def _rng_ids(seed):
    rnd = random.Random(seed)
    payer = str(rnd.randrange(10**11, 10**12))
    accounts = [payer] + [str(rnd.randrange(10**11, 10**12)) for _ in range(24)]
    return rnd, payer, accounts


# ---- the SQL ----------------------------------------------------------------------------------------
def build_select(n_total: int, seed: int) -> tuple[str, list[str]]:
    """The SELECT over ``range(lo, hi)`` (placeholders ``{lo}``/``{hi}``) producing every column as
    text, plus the internal integer columns ``_unblended_u`` and ``_blended_u`` for cross-checks."""
    cols = [c for c, _ in read_columns()]
    rnd, payer, accounts = _rng_ids(seed)
    T = TEMPLATES
    nt = len(T)
    S = seed * 1000

    def h(k):  # an independent pseudo-random UBIGINT per row
        return f"(hash(i, {S + k}) >> 1)::BIGINT"

    # weighted template pick over 1,000,000 buckets
    total_w = sum(t["w"] for t in T)
    bounds, acc = [], 0.0
    for t in T:
        acc += t["w"]
        bounds.append(round(acc / total_w * 1_000_000))
    bounds[-1] = 1_000_000
    tid_case = "CASE " + " ".join(f"WHEN _b < {b} THEN {k + 1}" for k, b in enumerate(bounds[:-1])) + f" ELSE {nt} END"

    reg_pick = []
    for k, r in enumerate(REGIONS):
        reg_pick += [k + 1] * r[4]
    assert len(reg_pick) == 100

    def tl(key, default=None, f=lambda v: v):
        return lst([f(t.get(key, default)) for t in T]) + "[tid]"

    amt_kinds = ["hour", "gbmo", "gb", "count", "gbsec", "one", "prorate"]
    cost_kinds = ["rate", "tax", "credit"]
    # line item kind k: 0 plain, 1 SavingsPlanCoveredUsage, 2 SavingsPlanNegation, 3 DiscountedUsage
    k_case = ("CASE WHEN _sp AND _kx < 12 THEN 1 WHEN _sp AND _kx < 20 THEN 2 "
              "WHEN _ri AND _kx >= 20 AND _kx < 26 THEN 3 ELSE 0 END")
    uuid_of = lambda s: (f"substr({s},1,8)||'-'||substr({s},9,4)||'-'||substr({s},13,4)||'-'||substr({s},17,4)||'-'||substr({s},21,12)")

    stage1 = f"""
      SELECT i, _b, tid, reg, acc, resnum, hr, _kx,
             {tl('sp', False)} AS _sp, {tl('ri', False)} AS _ri,
             {tl('glob', False)} AS is_glob,
             {lst([amt_kinds.index(t['amt']) + 1 for t in T])}[tid] AS ak,
             {lst([cost_kinds.index(t.get('cost', 'rate')) for t in T])}[tid] AS ck,
             {lst([units(t['rate']) for t in T])}[tid] AS base_rate_u,
             {lst([r[3] for r in REGIONS])}[reg] AS factor,
             {h(6)} AS h6, {h(7)} AS h7, {h(8)} AS h8
      FROM (
        SELECT i, _b, tid, reg, acc, hr, _kx,
               (hash(i, {S + 5}) >> 1)::BIGINT % {lst([t['pool'] for t in T])}[tid] AS resnum
        FROM (
          SELECT i, _b, {tid_case} AS tid,
                 {lst(reg_pick)}[{h(2)} % 100 + 1] AS reg,
                 ({h(3)} % {len(accounts)}) + 1 AS acc,
                 (i * {HOURS}) // {n_total} AS hr,
                 {h(4)} % 100 AS _kx
          FROM (SELECT i, {h(1)} % 1000000 AS _b FROM range({{lo}}, {{hi}}) t(i))
        )
      )"""

    stage2 = f"""
      SELECT *, {k_case} AS k,
             CASE WHEN is_glob THEN NULL ELSE {lst([r[0] for r in REGIONS])}[reg] END AS region,
             CASE WHEN is_glob THEN NULL ELSE {lst([r[1] for r in REGIONS])}[reg] END AS loc,
             CASE WHEN is_glob THEN '' ELSE {lst([r[2] for r in REGIONS])}[reg] END AS prefix,
             {lst(accounts)}[acc] AS account,
             CASE WHEN is_glob THEN base_rate_u ELSE base_rate_u * factor // 100 END AS rate_u,
             CASE ak
               WHEN 1 THEN CASE WHEN h6 % 4 = 0 THEN ((h7 % 3599 + 1) * {SCALE} + 1800) // 3600 ELSE {SCALE} END
               WHEN 2 THEN ({lst([8, 20, 30, 50, 100, 200, 500, 1000, 2000])}[resnum % 9 + 1] * {SCALE} + {HOURS // 2}) // {HOURS}
               WHEN 3 THEN h6 % {lst([10**e for e in range(3, 13)])}[h7 % 10 + 1]
               WHEN 4 THEN ((h6 % {lst([10, 100, 1000, 10000, 100000, 1000000])}[h7 % 6 + 1]) + 1) * {SCALE}
               WHEN 5 THEN ((h6 % 10000000) + 1) * 100000
               WHEN 6 THEN {SCALE}
               ELSE ((h6 % 20) + 1) * {SCALE} // {HOURS}
             END::BIGINT AS amount_u,
             md5(concat('{seed}:', tid, ':', acc, ':', resnum)) AS resmd5,
             TIMESTAMP '{PERIOD_START} 00:00:00' + to_hours(hr::BIGINT) AS ts
      FROM ({stage1})"""

    # money, all HUGEINT of 1e-10
    stage3 = f"""
      SELECT *,
             CASE ck WHEN 0 THEN (amount_u::HUGEINT * rate_u + {SCALE // 2}) // {SCALE}
                     WHEN 1 THEN (h8 % 100000000000)::HUGEINT
                     ELSE -((h8 % 100000000000)::HUGEINT) END AS od_u,
             rate_u * 72 // 100 AS sp_rate_u,
             rate_u * 58 // 100 AS ri_rate_u,
             rate_u * 61 // 100 AS bl_rate_u
      FROM ({stage2})"""

    stage4 = f"""
      SELECT *,
             CASE k WHEN 2 THEN -od_u WHEN 3 THEN 0::HUGEINT ELSE od_u END AS _unblended_u,
             CASE k WHEN 2 THEN -od_u
                    WHEN 3 THEN (amount_u::HUGEINT * bl_rate_u + {SCALE // 2}) // {SCALE}
                    ELSE od_u END AS _blended_u,
             (amount_u::HUGEINT * sp_rate_u + {SCALE // 2}) // {SCALE} AS sp_cost_u,
             (amount_u::HUGEINT * ri_rate_u + {SCALE // 2}) // {SCALE} AS ri_cost_u,
             CASE WHEN {tl('res')} IS NULL THEN NULL ELSE
               replace(replace(replace(replace(replace({tl('res')}, '{{r}}', coalesce(region, '')), '{{a}}', account),
                 '{{x}}', substr(resmd5, 1, 16)), '{{n}}', (resnum + 1)::VARCHAR), '{{u}}', {uuid_of('resmd5')}) END AS resource,
             strftime(ts, '%Y-%m-%dT%H:%M:%S') AS ts_s,
             strftime(ts + INTERVAL 1 HOUR, '%Y-%m-%dT%H:%M:%S') AS te_s,
             prefix || {tl('ut')} AS usage_type,
             upper(substr(md5(concat('{seed}:sku:', tid, ':', reg)), 1, 16)) AS sku
      FROM ({stage3})"""

    fmt = lambda e: f"fmt10({e})"
    monthly = f"{lst([t['amt'] == 'one' for t in T])}[tid]"
    lt_plain = tl("lt", "Usage")
    has_res = f"({tl('res')} IS NOT NULL)"
    sp_arns = [f"arn:aws:savingsplans::{payer}:savingsplan/{uuid.UUID(int=rnd.getrandbits(128), version=4)}" for _ in range(3)]
    ri_ids = [str(uuid.UUID(int=rnd.getrandbits(128), version=4)) for _ in range(6)]
    invoice = str(rnd.randrange(2_000_000_000, 2_100_000_000))
    cc_env = [rnd.choice(["prod", "prod", "staging", "dev", None]) for _ in accounts]
    cc_center = [None if rnd.random() < 0.2 else f"CC-{rnd.randrange(1000, 1100)}" for _ in accounts]
    cc_org = [rnd.choice(["Retail", "Platform", "Data", "Corporate"]) for _ in accounts]
    cc_ous = [rnd.choice(["ou-prod-apps", "ou-prod-data", "ou-sandbox", "ou-shared"]) for _ in accounts]
    cc_name = [None if rnd.random() < 0.5 else rnd.choice(["Alpha", "Beta", "Gamma"]) for _ in accounts]

    E = {}  # column -> SQL expression (text or NULL)
    # 52 base32 characters ([a-z2-7]), like the real ones: four 63-bit hashes, 13 digits each
    b32 = " || ".join(f"lpad(to_base({h(30 + j)}, 32), 13, '0')" for j in range(4))
    E["identity/LineItemId"] = (f"translate({b32}, '0123456789ABCDEFGHIJKLMNOPQRSTUV', "
                                "'abcdefghijklmnopqrstuvwxyz234567')")
    E["identity/TimeInterval"] = (f"CASE WHEN {monthly} THEN '{PERIOD_START}T00:00:00Z/{PERIOD_END}T00:00:00Z' "
                                  "ELSE ts_s || 'Z/' || te_s || 'Z' END")
    E["bill/BillingEntity"] = q("AWS")
    E["bill/BillingPeriodEndDate"] = q(f"{PERIOD_END}T00:00:00.000Z")
    E["bill/BillingPeriodStartDate"] = q(f"{PERIOD_START}T00:00:00.000Z")
    E["bill/BillType"] = q("Anniversary")
    E["bill/InvoiceId"] = q(invoice)
    E["bill/InvoicingEntity"] = q("Amazon Web Services, Inc.")
    E["bill/PayerAccountId"] = q(payer)
    E["costCategory/Charge type"] = f"CASE WHEN k = 0 THEN {lt_plain} ELSE 'Usage' END"
    E["costCategory/cost_env"] = f"{lst(cc_env)}[acc]"
    E["costCategory/CostCenter"] = f"{lst(cc_center)}[acc]"
    E["costCategory/name"] = f"{lst(cc_name)}[acc]"
    E["costCategory/Organization"] = f"{lst(cc_org)}[acc]"
    E["costCategory/OUs"] = f"{lst(cc_ous)}[acc]"
    E["costCategory/qe_source"] = "CASE WHEN acc % 7 = 0 THEN 'qe' ELSE NULL END"
    E["lineItem/AvailabilityZone"] = f"CASE WHEN {tl('az', False)} THEN region || {lst(['a', 'b', 'c'])}[resnum % 3 + 1] END"
    E["lineItem/BlendedCost"] = fmt("_blended_u")
    E["lineItem/BlendedRate"] = (f"CASE WHEN ck <> 0 THEN NULL WHEN k = 3 THEN {fmt('bl_rate_u')} "
                                 f"WHEN k = 2 THEN {fmt('-rate_u')} ELSE {fmt('rate_u')} END")
    E["lineItem/CurrencyCode"] = q("USD")
    E["lineItem/LegalEntity"] = q("Amazon Web Services, Inc.")
    E["lineItem/LineItemDescription"] = (
        f"CASE k WHEN 2 THEN 'SavingsPlanNegation used by AccountId : ' || account || ' and UsageSku : ' || sku "
        f"WHEN 3 THEN 'USD 0.0 hourly fee per ' || {tl('ut')} || ' reserved instance applied' "
        f"ELSE replace(replace({tl('desc')}, '{{rate}}', coalesce({fmt('rate_u')}, '')), '{{loc}}', coalesce(loc, 'Global')) END")
    E["lineItem/LineItemType"] = (f"CASE k WHEN 1 THEN 'SavingsPlanCoveredUsage' WHEN 2 THEN 'SavingsPlanNegation' "
                                  f"WHEN 3 THEN 'DiscountedUsage' ELSE {lt_plain} END")
    nf_u = lst([units(str(t['nf'])) if t.get('nf') else None for t in T]) + "[tid]"
    E["lineItem/NormalizationFactor"] = f"CASE WHEN {nf_u} IS NULL THEN NULL ELSE {fmt(nf_u)} END"
    E["lineItem/NormalizedUsageAmount"] = f"CASE WHEN {nf_u} IS NULL THEN NULL ELSE {fmt(f'amount_u::HUGEINT * {nf_u} // {SCALE}')} END"
    E["lineItem/Operation"] = f"nullif({tl('op')}, '')"
    E["lineItem/ProductCode"] = tl("code")
    E["lineItem/ResourceId"] = "resource"
    E["lineItem/TaxType"] = "CASE WHEN ck = 1 THEN 'Sales Tax' END"
    E["lineItem/UnblendedCost"] = fmt("_unblended_u")
    E["lineItem/UnblendedRate"] = (f"CASE WHEN ck <> 0 THEN NULL WHEN k = 3 THEN '0.0' "
                                   f"WHEN k = 2 THEN {fmt('-rate_u')} ELSE {fmt('rate_u')} END")
    E["lineItem/UsageAccountId"] = "account"
    E["lineItem/UsageAmount"] = f"CASE WHEN ck <> 0 THEN NULL ELSE {fmt('amount_u')} END"
    E["lineItem/UsageStartDate"] = f"CASE WHEN {monthly} THEN '{PERIOD_START}T00:00:00.000Z' ELSE ts_s || '.000Z' END"
    E["lineItem/UsageEndDate"] = f"CASE WHEN {monthly} THEN '{PERIOD_END}T00:00:00.000Z' ELSE te_s || '.000Z' END"
    E["lineItem/UsageType"] = "nullif(usage_type, '')"
    # pricing
    priced = "(ck = 0 AND k <> 2)"
    E["pricing/currency"] = f"CASE WHEN {priced} THEN 'USD' END"
    E["pricing/LeaseContractLength"] = "CASE WHEN k = 3 THEN '1yr' END"
    E["pricing/publicOnDemandCost"] = f"CASE WHEN {priced} THEN {fmt('od_u')} END"
    E["pricing/publicOnDemandRate"] = f"CASE WHEN {priced} THEN {fmt('rate_u')} END"
    E["pricing/PurchaseOption"] = "CASE WHEN k = 3 THEN 'No Upfront' END"
    E["pricing/RateCode"] = f"CASE WHEN {priced} THEN sku || CASE WHEN k = 3 THEN '.4NA7Y494T4.6YS6EN2CT7' ELSE '.JRTCKXETXF.6YS6EN2CT7' END END"
    E["pricing/RateId"] = f"CASE WHEN {priced} THEN ((hash(tid, reg, {S + 9}) >> 1)::BIGINT % 90000000000 + 10000000000)::VARCHAR END"
    E["pricing/term"] = f"CASE WHEN NOT {priced} THEN NULL WHEN k = 3 THEN 'Reserved' ELSE 'OnDemand' END"
    E["pricing/unit"] = f"CASE WHEN {priced} THEN {tl('unit')} END"
    # product: from the templates (with {loc}/{r} placeholders), plus region columns
    prod_cols = [c for c in cols if c.startswith("product/")]
    for c in prod_cols:
        leaf = c.split("/", 1)[1]
        vals = [t["p"].get(leaf) or None for t in T]
        if leaf in ("region", "regionCode"):
            E[c] = f"coalesce({lst(vals)}[tid], region)"
            continue
        if leaf == "location":
            E[c] = f"coalesce({lst(vals)}[tid], loc)"
            continue
        if leaf == "usagetype":
            E[c] = "CASE WHEN ck = 0 THEN nullif(usage_type, '') END"
            continue
        if leaf == "operation":
            E[c] = f"CASE WHEN ck = 0 THEN nullif({tl('op')}, '') END"
            continue
        if leaf == "sku":
            E[c] = "CASE WHEN ck = 0 THEN sku END"
            continue
        if leaf == "availabilityZone":
            E[c] = "CASE WHEN ck = 0 AND NOT is_glob THEN 'NA' END"
            continue
        if all(v is None for v in vals):
            E[c] = "NULL"
            continue
        e = f"{lst(vals)}[tid]"
        if any(v and "{loc}" in v for v in vals):
            e = f"replace({e}, '{{loc}}', coalesce(loc, ''))"
        if any(v and "{r}" in v for v in vals):
            e = f"replace({e}, '{{r}}', coalesce(region, ''))"
        E[c] = e
    # reservation: SubscriptionId on every row, the rest on DiscountedUsage rows
    ri = lambda e: f"CASE WHEN k = 3 THEN {e} END"
    E["reservation/SubscriptionId"] = f"((hash(acc, tid, {S + 10}) >> 1)::BIGINT % 9000000000 + 1000000000)::VARCHAR"
    E["reservation/AmortizedUpfrontCostForUsage"] = ri("'0.0'")
    E["reservation/AmortizedUpfrontFeeForBillingPeriod"] = ri("'0.0'")
    E["reservation/EffectiveCost"] = ri(fmt("ri_cost_u"))
    E["reservation/RecurringFeeForUsage"] = ri(fmt("ri_cost_u"))
    E["reservation/StartTime"] = ri("'2023-09-01T00:00:00.000Z'")
    E["reservation/EndTime"] = ri("'2024-08-31T23:59:59.000Z'")
    E["reservation/ModificationStatus"] = ri("'Original'")
    E["reservation/NumberOfReservations"] = ri("((resnum % 4) + 1)::VARCHAR")
    E["reservation/NormalizedUnitsPerReservation"] = ri(f"{lst([str(t.get('nf') or '') or None for t in T])}[tid]")
    E["reservation/TotalReservedNormalizedUnits"] = ri(f"(({lst([str(t.get('nf') or 0) for t in T])}[tid])::DECIMAL(8,1) * {HOURS} * ((resnum % 4) + 1))::VARCHAR")
    E["reservation/TotalReservedUnits"] = ri(f"({HOURS} * ((resnum % 4) + 1))::VARCHAR")
    E["reservation/UnitsPerReservation"] = ri(f"'{HOURS}'")
    E["reservation/UnusedAmortizedUpfrontFeeForBillingPeriod"] = ri("'0.0'")
    E["reservation/UnusedNormalizedUnitQuantity"] = ri("'0.0'")
    E["reservation/UnusedQuantity"] = ri("'0.0'")
    E["reservation/UnusedRecurringFee"] = ri("'0.0'")
    E["reservation/UpfrontValue"] = ri("'0.0'")
    E["reservation/AvailabilityZone"] = "NULL"
    E["reservation/ReservationARN"] = ri(
        f"CASE WHEN tid <= {sum(1 for t in T if t['code'] == 'AmazonEC2' and t['ut'].startswith('BoxUsage'))} "
        f"THEN 'arn:aws:ec2:' || region || ':{payer}:reserved-instances/' || {lst(ri_ids)}[resnum % 6 + 1] "
        f"ELSE 'arn:aws:rds:' || region || ':{payer}:ri:ri-2023-09-01-' || substr(resmd5, 1, 12) END")
    # savings plans: covered usage (k=1) and negation (k=2) rows
    sp = lambda e, kk="k IN (1, 2)": f"CASE WHEN {kk} THEN {e} END"
    E["savingsPlan/SavingsPlanARN"] = sp(f"{lst(sp_arns)}[resnum % 3 + 1]")
    E["savingsPlan/SavingsPlanRate"] = sp(fmt("sp_rate_u"), "k = 1")
    E["savingsPlan/SavingsPlanEffectiveCost"] = sp(fmt("sp_cost_u"), "k = 1")
    E["savingsPlan/OfferingType"] = sp("'ComputeSavingsPlans'")
    E["savingsPlan/PaymentOption"] = sp("'No Upfront'")
    E["savingsPlan/PurchaseTerm"] = sp("'1yr'")
    E["savingsPlan/Region"] = "NULL"
    E["savingsPlan/InstanceTypeFamily"] = "NULL"
    E["savingsPlan/StartTime"] = sp("'2023-06-01T00:00:00.000Z'")
    E["savingsPlan/EndTime"] = sp("'2024-05-31T23:59:59.000Z'")
    for c in ("AmortizedUpfrontCommitmentForBillingPeriod", "RecurringCommitmentForBillingPeriod",
              "TotalCommitmentToDate", "UsedCommitment"):
        E[f"savingsPlan/{c}"] = sp("'0.0'", "k = 1")
    # sparse resource tags, a property of the resource (same resource, same tags)
    owners = [f"{f}.{l}@example.com" for f in ("ana", "ben", "chen", "dara", "eli", "fatima", "gus", "hana", "ivan", "jo")
              for l in ("smith", "garcia", "kim", "okafor", "novak", "silva")]
    tag_vals = {
        "resourceTags/aws:autoscaling:groupName": "'eks-ng-' || substr(resmd5, 20, 8) || '-' || " + uuid_of("md5(resmd5)"),
        "resourceTags/aws:cloudformation:logical-id": f"{lst(['Instance', 'Volume', 'Bucket', 'Function', 'Table', 'Queue', 'LoadBalancer', 'Key'])}[tid % 8 + 1] || (resnum % 5 + 1)::VARCHAR",
        "resourceTags/aws:cloudformation:stack-id": "'arn:aws:cloudformation:' || coalesce(region, 'us-east-1') || ':' || account || ':stack/app-' || (resnum % 50 + 1)::VARCHAR || '/' || " + uuid_of("md5(resmd5 || 'cfn')"),
        "resourceTags/aws:cloudformation:stack-name": "'app-' || (resnum % 50 + 1)::VARCHAR",
        "resourceTags/aws:createdBy": "'IAMUser:AIDA' || upper(substr(resmd5, 18, 15)) || ':deploy-bot'",
        "resourceTags/user:Application": f"{lst(['checkout', 'catalog', 'recommendations', 'reporting', 'auth'])}[resnum % 5 + 1]",
        "resourceTags/user:CostCenter": "'CC-' || (1000 + (acc * 7 + resnum) % 40)::VARCHAR",
        "resourceTags/user:Environment": f"{lst(['prod', 'prod', 'staging', 'dev', 'test'])}[(resnum + acc) % 5 + 1]",
        "resourceTags/user:GitCommit": "md5(resmd5 || 'git') || substr(resmd5, 1, 8)",
        "resourceTags/user:Name": f"{lst(['web', 'api', 'worker', 'batch', 'etl', 'db', 'cache', 'ml'])}[resnum % 8 + 1] || '-' || (resnum + 1)::VARCHAR",
        "resourceTags/user:Owner": f"{lst(owners)}[(resnum * 7 + acc) % {len(owners)} + 1]",
        "resourceTags/user:Project": f"{lst(['phoenix', 'atlas', 'orion', 'hermes', 'apollo', 'zeus', 'iris'])}[(resnum + tid) % 7 + 1]",
        "resourceTags/user:Team": f"{lst(['platform', 'data', 'payments', 'search', 'ml', 'growth'])}[(resnum * 3 + acc) % 6 + 1]",
        "resourceTags/user:Version": "'v' || (resnum % 4 + 1)::VARCHAR || '.' || (resnum % 17)::VARCHAR || '.' || (resnum % 9)::VARCHAR",
    }
    for j, (c, pct) in enumerate(TAGS):
        E[c] = f"CASE WHEN {has_res} AND (hash(acc, tid, resnum, {S + 20 + j}) >> 1)::BIGINT % 100 < {pct} THEN {tag_vals[c]} END"

    missing = [c for c in cols if c not in E]
    assert not missing, f"no expression for {missing}"
    extra = [c for c in E if c not in cols]
    assert not extra, f"expressions for unknown columns {extra}"
    select = ",\n  ".join(f"{E[c]} AS {qi(c)}" for c in cols)
    sql = f"SELECT\n  {select},\n  _unblended_u, _blended_u\nFROM ({stage4})"
    return sql, cols


def qi(name) -> str:
    return '"' + name.replace('"', '""') + '"'


READ_OPTS = "all_varchar = true, header = true, delim = ',', quote = '\"', escape = '\"'"

MACROS = f"""
CREATE OR REPLACE MACRO fmt10(u) AS CASE WHEN u IS NULL THEN NULL ELSE
  (CASE WHEN u < 0 THEN '-' ELSE '' END) || (abs(u) // {SCALE})::VARCHAR || '.' ||
  coalesce(nullif(rtrim(lpad((abs(u) % {SCALE})::VARCHAR, 10, '0'), '0'), ''), '0') END;
"""


# ---- layout, manifest, stamp -------------------------------------------------------------------------
def layout(args):
    date_range = "20240301-20240401"
    folder = f"{args.prefix.strip('/')}/{args.report}/{date_range}" if args.prefix.strip("/") else f"{args.report}/{date_range}"
    assembly = str(uuid.UUID(int=random.Random(f"assembly:{args.seed}:{args.rows}:{args.files}").getrandbits(128), version=4))
    keys = [f"{folder}/{assembly}/{args.report}-{k:05d}.csv.gz" for k in range(1, args.files + 1)]
    return folder, assembly, keys


def manifest_json(args, cols, folder, assembly, keys, payer) -> bytes:
    m = {
        "assemblyId": assembly,
        "account": payer,
        "columns": [{"category": c.split("/", 1)[0], "name": c.split("/", 1)[1], "type": t} for c, t in cols],
        "charset": "UTF-8",
        "compression": "GZIP",
        "contentType": "text/csv",
        "reportId": hashlib.sha256(f"{payer}:{args.report}".encode()).hexdigest(),
        "reportName": args.report,
        "billingPeriod": {"start": "20240301T000000.000Z", "end": "20240401T000000.000Z"},
        "bucket": args.bucket,
        "reportKeys": keys,
        "additionalArtifactKeys": [],
    }
    return (json.dumps(m, indent=2) + "\n").encode()


def md5_of(path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        while b := f.read(8 << 20):
            h.update(b)
    return h.hexdigest()


def stamp_of(args) -> dict:
    return {
        "generator_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest(),
        "columns_sha256": hashlib.sha256(COLUMNS_CSV.read_bytes()).hexdigest(),
        "duckdb": duckdb.__version__,
        "rows": args.rows, "files": args.files, "seed": args.seed, "report": args.report,
        "prefix": args.prefix, "bucket": args.bucket, "period": PERIOD,
    }


def cached(out: Path, stamp: dict) -> dict | None:
    "The previous stamp if `out` holds a complete generation with these parameters."
    try:
        old = json.loads((out / STAMP).read_text())
    except (OSError, ValueError):
        return None
    if old.get("params") != stamp:
        return None
    for rel, size in old.get("files", {}).items():
        p = out / rel
        if not p.is_file() or p.stat().st_size != size:
            return None
    return old


# ---- main ---------------------------------------------------------------------------------------------
def generate(args) -> int:
    out = Path(args.out).resolve()
    stamp = stamp_of(args)
    old = None if args.force else cached(out, stamp)
    if old:
        print(f"cached: {out} already holds this month ({old['rows']:,} rows, {old['total_bytes']:,} bytes, "
              f"generated in {old['seconds']} s); nothing to do (--force to regenerate)")
        return 0
    if out.exists() and any(out.iterdir()) and not (out / STAMP).exists() and not args.force:
        print(f"{out} exists, is not empty and was not written by this script: refusing to replace it "
              f"(--force to replace)", file=sys.stderr)
        return 2

    t0 = time.perf_counter()
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    folder, assembly, keys = layout(args)
    data_dir = tmp / folder / assembly
    data_dir.mkdir(parents=True)
    _, payer, _ = _rng_ids(args.seed)
    select, cols = build_select(args.rows, args.seed)

    con = duckdb.connect()
    con.execute(f"SET threads = {args.threads}")
    con.execute("SET preserve_insertion_order = true")
    con.execute(MACROS)
    text_cols = ", ".join(qi(c) for c in cols)
    per = -(-args.rows // args.files)

    def write(k):
        lo, hi = k * per, min(args.rows, (k + 1) * per)
        cur = con.cursor()
        path = tmp / keys[k]
        sql = select.replace("{lo}", str(lo)).replace("{hi}", str(hi))
        t = time.perf_counter()
        cur.execute(f"COPY (SELECT {text_cols} FROM ({sql})) TO '{path}' (HEADER, DELIMITER ',', COMPRESSION gzip)")
        cur.close()
        return k, hi - lo, time.perf_counter() - t

    # each COPY compresses on one thread: run `--jobs` files at once to use the cores
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for k, n, s in pool.map(write, range(args.files)):
            print(f"  {keys[k].rsplit('/', 1)[1]}: {n:,} rows, {(tmp / keys[k]).stat().st_size / 1e6:.1f} MB, {s:.1f} s",
                  flush=True)
    t_write = time.perf_counter() - t0

    # the generator's own integer sums (what it meant to write)
    gen = con.execute(
        f"SELECT count(*), sum(_unblended_u), sum(_blended_u) FROM ({select.replace('{lo}', '0').replace('{hi}', str(args.rows))})"
    ).fetchone()
    gen_unblended = Decimal(int(gen[1])).scaleb(-10)
    gen_blended = Decimal(int(gen[2])).scaleb(-10)

    # read the files back as text: header, row count, exact sums
    files_sql = "[" + ", ".join(q(str(tmp / k)) for k in keys) + "]"
    header = con.execute(f"SELECT * FROM read_csv({files_sql}, {READ_OPTS}) LIMIT 0").description
    got_cols = [d[0] for d in header]
    assert got_cols == cols, f"header differs from the dictionary order: {got_cols[:5]}..."
    sums = {"lineItem/UnblendedCost": None, "lineItem/BlendedCost": None, "lineItem/NetUnblendedCost": None}
    present = [c for c in sums if c in cols]
    agg = ", ".join(f"sum({qi(c)}::DECIMAL(38,18))" for c in present)
    row = con.execute(f"SELECT count(*), {agg} FROM read_csv({files_sql}, {READ_OPTS})").fetchone()
    n_read = row[0]
    for c, v in zip(present, row[1:]):
        sums[c] = v
    con.close()
    assert n_read == args.rows, (n_read, args.rows)
    assert sums["lineItem/UnblendedCost"] == gen_unblended, (sums["lineItem/UnblendedCost"], gen_unblended)
    assert sums["lineItem/BlendedCost"] == gen_blended, (sums["lineItem/BlendedCost"], gen_blended)
    t_check = time.perf_counter() - t0 - t_write

    man = manifest_json(args, read_columns(), folder, assembly, keys, payer)
    (tmp / folder / assembly / f"{args.report}-Manifest.json").write_bytes(man)
    (tmp / folder / f"{args.report}-Manifest.json").write_bytes(man)

    def dec(v):
        return None if v is None else format(v.normalize(), "f")

    expected = {
        "period": PERIOD,
        "assembly_id": assembly,
        "rows": n_read,
        "columns": len(cols),
        "data_keys": keys,
        "manifest_keys": [f"{folder}/{args.report}-Manifest.json", f"{folder}/{assembly}/{args.report}-Manifest.json"],
        "files": {k: {"bytes": (tmp / k).stat().st_size, "md5": md5_of(tmp / k)} for k in keys},
        "sums": {c: dec(v) for c, v in sums.items()},
        "sums_note": ("exact: each value is plain decimal text with at most 10 decimal places, summed by DuckDB "
                      "as DECIMAL(38,18) from the text read back from the written files (empty strings are NULL "
                      "and add nothing); cross-checked against the generator's integer sum of 1e-10 units. "
                      "null: the column is not in this export."),
    }
    (tmp / "expected.json").write_text(json.dumps(expected, indent=2) + "\n")
    files = {p.relative_to(tmp).as_posix(): p.stat().st_size for p in sorted((tmp / "cur").rglob("*")) if p.is_file()}
    data_bytes = sum(files[k] for k in keys)
    seconds = round(time.perf_counter() - t0, 1)
    (tmp / STAMP).write_text(json.dumps({"params": stamp, "files": files, "rows": n_read, "total_bytes": data_bytes,
                                          "seconds": seconds}, indent=1) + "\n")
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    print(f"generated {out}: {n_read:,} rows x {len(cols)} columns in {args.files} files, "
          f"{data_bytes:,} bytes of csv.gz ({data_bytes / 1e6:.1f} MB)")
    print(f"time: {seconds} s (write {t_write:.1f} s, read-back check {t_check:.1f} s)")
    print(f"sums: UnblendedCost {expected['sums']['lineItem/UnblendedCost']}, "
          f"BlendedCost {expected['sums']['lineItem/BlendedCost']} (exact; see {out / 'expected.json'})")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--files", type=int, default=4)
    ap.add_argument("--out", default=str(HERE / ".data" / "month-1m"))
    ap.add_argument("--report", default="bench-cur", help="CUR report name (default bench-cur)")
    ap.add_argument("--prefix", default="cur", help="S3 prefix of the report (default cur)")
    ap.add_argument("--bucket", default="finops-bench", help="bucket named in the manifest (default finops-bench)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2, help="DuckDB threads")
    ap.add_argument("--jobs", type=int, default=min(4, os.cpu_count() or 2), help="files written at once")
    ap.add_argument("--force", action="store_true", help="regenerate even if the output is current")
    args = ap.parse_args(argv)
    if args.rows < args.files or args.files < 1:
        ap.error("--rows must be at least --files, and --files at least 1")
    return generate(args)


if __name__ == "__main__":
    sys.exit(main())
