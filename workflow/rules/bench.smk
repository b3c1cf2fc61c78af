# `sslbench bench`: training and evaluation speed of the reference and fast modes (benchmarks/README.md).
# Not part of the default target; ask for it by file:
#   snakemake --cores 4 results/bench/synthetic/bench.csv
#   snakemake --cores 16 results/bench/la/bench.csv --config data_root=/data   (on the GPU to be measured)
# The job takes a whole GPU (gpu_mem_mb=80000) so that no other run disturbs its timings.

rule bench:
    output:
        csv="results/bench/{dataset}/bench.csv",
        md="results/bench/{dataset}/bench.md",
    params:
        data_root=bench_data_root,
        out=subpath(output.csv, parent=True),
    threads: 4
    resources:
        gpu=GPUS,
        gpu_mem_mb=80000,
        mem_mb=32000,
        runtime=180,
    conda:
        ENV
    log:
        "results/logs/bench/{dataset}.log",
    shell:
        "OMP_NUM_THREADS={threads} sslbench bench --dataset {wildcards.dataset} --data-root {params.data_root}"
        " --out {params.out} > {log} 2>&1"
