# Tables, figures and the HTML report (`snakemake --report report.html`), from the stored run results.


TABLE_FILES = [f"results/tables/{NAME}/{name}" for name in table_names(SUITE)]
FIGURE_FILES = [f"figures/{NAME}/{name}" for name in figure_names(SUITE)]


rule tables:
    input:
        summaries,
        suite=SUITE_FILE,
    output:
        done=touch(TABLES_DONE),
        html=[report(f, category="Tables", caption="../report/table.rst") for f in TABLE_FILES if f.endswith(".html")],
        other=[f for f in TABLE_FILES if not f.endswith(".html")],
    params:
        out=lambda wildcards, output: os.path.dirname(output.done),
        cfg=SUITE_ARGS,
    conda:
        ENV
    log:
        f"results/logs/{NAME}/tables.log",
    shell:
        "sslbench tables --suite {input.suite} {params.cfg} --out {params.out} > {log} 2>&1"


rule features:
    input:
        lambda wildcards: f"{SUITE.feature_run()}/{STATUS}",
    output:
        SUITE.features_file(),
    params:
        run_dir=lambda wildcards, input: os.path.dirname(input[0]),
    threads: 1
    resources:
        gpu=GPUS,
        gpu_mem_mb=4000,
    conda:
        ENV
    log:
        f"results/logs/{NAME}/features.log",
    shell:
        "OMP_NUM_THREADS={threads} sslbench features {params.run_dir} --out {output} > {log} 2>&1"


rule figures:
    input:
        summaries,
        final_summaries,
        train_logs,
        predictions,
        [SUITE.features_file()] if SUITE.feature_run() else [],
        expand("results/complexity/{method}.json", method=COMPLEXITY_METHODS),
        suite=SUITE_FILE,
    output:
        done=touch(FIGURES_DONE),
        png=[report(f, category="Figures", caption="../report/figure.rst") for f in FIGURE_FILES if f.endswith(".png")],
        other=[f for f in FIGURE_FILES if not f.endswith(".png")],
    params:
        out=lambda wildcards, output: os.path.dirname(output.done),
        cfg=SUITE_ARGS,
    conda:
        ENV
    log:
        f"results/logs/{NAME}/figures.log",
    shell:
        "OMP_NUM_THREADS=1 sslbench figures --suite {input.suite} {params.cfg} --out {params.out} > {log} 2>&1"
