# The demo suite: supervised V-Net lower and upper bounds on the embedded synthetic dataset.

DEMO_CONFIG = "benchmarks/config/demo.yaml"
DEMO_RUNS = {"vnet_lower": "4", "vnet_upper": "all"}


rule demo:
    input:
        expand("results/demo/{run}/eval/summary.json", run=DEMO_RUNS),


rule demo_train:
    input:
        DEMO_CONFIG,
    output:
        "results/demo/{run}/checkpoint_final.pt",
    params:
        labels=lambda wildcards: DEMO_RUNS[wildcards.run],
        run_dir=subpath(output[0], parent=True),
    threads: workflow.cores
    log:
        "results/demo/{run}/train.log",
    shell:
        "OMP_NUM_THREADS={threads} sslbench train --config {input} --labels {params.labels}"
        " --out {params.run_dir} --no-progress 2> {log}"


rule demo_evaluate:
    input:
        "results/demo/{run}/checkpoint_final.pt",
    output:
        "results/demo/{run}/eval/summary.json",
    params:
        run_dir=subpath(input[0], parent=True),
    log:
        "results/demo/{run}/evaluate.log",
    shell:
        "sslbench evaluate {params.run_dir} --no-progress > {log} 2>&1"
