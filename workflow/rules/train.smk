# Train, evaluate and predict one run; complexity of one method. One `sslbench` call per rule.
# A killed training resumes from checkpoint_latest.pt: the run directory is not an output, only
# status.json is, so Snakemake never deletes the partial run.
# A training whose loss goes non-finite writes status.json {"status": "failed", ...} and the job succeeds:
# divergence is a result (rerunning reproduces it), so the run is evaluated as "failed", shown as failed in the
# tables, and the other runs go on. Any other error (full disk, pre-emption, bad data) fails the job, which
# Snakemake may retry; the retry resumes from the last checkpoint.
# The log gets a plain progress line (iteration, it/s, ETA, mean loss terms) every 30 s of each stage.


rule train:
    input:
        dataset_input,
    output:
        f"{RUN_DIR}/{STATUS}",
    params:
        args=lambda wc: run_of(wc).train_args(),
        run_dir=subpath(output[0], parent=True),
    threads: 1
    resources:
        gpu=GPUS,
        gpu_mem_mb=GPU_MEM_MB,
        mem_mb=32000,
        runtime=24 * 60,
    conda:
        ENV
    log:
        "results/logs/{suite}/{dataset}/{key}/labels{labels}/seed{seed}/train.log",
    shell:
        "OMP_NUM_THREADS={threads} sslbench train {params.args} --out {params.run_dir} 2> {log}"
        " || grep -q '\"status\": \"failed\"' {output}"


rule evaluate:
    input:
        f"{RUN_DIR}/{STATUS}",
    output:
        f"{RUN_DIR}/eval/summary.json",
        f"{RUN_DIR}/eval/per_case.csv",
    params:
        run_dir=subpath(input[0], parent=True),
    threads: 1
    resources:
        gpu=GPUS,
        gpu_mem_mb=4000,
        mem_mb=16000,
        runtime=120,
    conda:
        ENV
    log:
        "results/logs/{suite}/{dataset}/{key}/labels{labels}/seed{seed}/evaluate.log",
    shell:
        "OMP_NUM_THREADS={threads} sslbench evaluate {params.run_dir} --no-progress > {log} 2>&1"


# The last checkpoint of every run, scored beside the selected one (the "last vs best" figures).
rule evaluate_final:
    input:
        f"{RUN_DIR}/{STATUS}",
    output:
        f"{RUN_DIR}/eval_final/summary.json",
        f"{RUN_DIR}/eval_final/per_case.csv",
    params:
        run_dir=subpath(input[0], parent=True),
    threads: 1
    resources:
        gpu=GPUS,
        gpu_mem_mb=4000,
        mem_mb=16000,
        runtime=120,
    conda:
        ENV
    log:
        "results/logs/{suite}/{dataset}/{key}/labels{labels}/seed{seed}/evaluate_final.log",
    shell:
        "OMP_NUM_THREADS={threads} sslbench evaluate {params.run_dir} --checkpoint final --no-progress > {log} 2>&1"


rule predict:
    input:
        ckpt=f"{RUN_DIR}/{STATUS}",
        ref=lambda wc: f"{suite_run(wc.suite, wc.dataset, PROPOSED, wc.labels, wc.seed)}/eval/per_case.csv",
    output:
        f"{RUN_DIR}/predictions.npz",
    params:
        run_dir=subpath(input.ckpt, parent=True),
        cases=lambda wc: SUITE.spec.get("qualitative", {}).get("cases", 2),
    threads: 1
    resources:
        gpu=GPUS,
        gpu_mem_mb=4000,
    conda:
        ENV
    log:
        "results/logs/{suite}/{dataset}/{key}/labels{labels}/seed{seed}/predict.log",
    shell:
        "OMP_NUM_THREADS={threads} sslbench predict {params.run_dir} --select-from {input.ref}"
        " --n-cases {params.cases} --out {output} > {log} 2>&1"


rule complexity:
    output:
        "results/complexity/{method}.json",
    params:
        counts="params params_train params_inference macs macs_train",  # a new count reruns earlier results
    conda:
        ENV
    log:
        "results/logs/complexity/{method}.log",
    shell:
        "OMP_NUM_THREADS=1 sslbench complexity --method {wildcards.method} --json > {output} 2> {log}"
