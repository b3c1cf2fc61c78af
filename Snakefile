# Regenerates the suite's results from the command line tools: `snakemake --cores N`.
# Rules are thin wrappers around `sslbench` subcommands (workflow/rules/*.smk).

include: "workflow/rules/demo.smk"


rule all:
    default_target: True
    input:
        rules.demo.input,
