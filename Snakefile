# Regenerates every table and figure of the suite: `snakemake --cores N` (the demo suite on synthetic data),
# `snakemake --cores N --config suite=paper data_root=/data` (the paper's protocol on the real datasets).
# Suites: benchmarks/config/suites/<name>.yaml (validated against workflow/schemas/suite.schema.yaml).
# Rules are thin wrappers around `sslbench` subcommands (workflow/rules/*.smk).

import os

from snakemake.utils import min_version, validate

min_version("8.0")


configfile: os.path.join(workflow.basedir, "workflow/config.yaml")


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/bench.smk"


rule all:
    default_target: True
    input:
        TABLES_DONE,
        FIGURES_DONE,
