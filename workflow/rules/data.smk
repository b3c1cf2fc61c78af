# Data: the embedded synthetic dataset, and real datasets prepared from the public raw releases when the config
# names their raw folder (`raw: {lung: /downloads/Task06_Lung}`; options in `prepare: {lung: [key=value]}`).


rule synth:
    output:
        "{root}/test.list",
    params:
        train=lambda wc: next(d for d in SYNTH.values() if d["data_root"] == wc.root).get("synth", {}).get("train", 40),
        test=lambda wc: next(d for d in SYNTH.values() if d["data_root"] == wc.root).get("synth", {}).get("test", 20),
        seed=lambda wc: next(d for d in SYNTH.values() if d["data_root"] == wc.root).get("synth", {}).get("seed", 0),
    wildcard_constraints:
        root="|".join(d["data_root"] for d in SYNTH.values()) or "(?!)",
    conda:
        ENV
    log:
        "results/logs/synth/{root}.log",
    shell:
        "sslbench synth --out {wildcards.root} --train {params.train} --test {params.test}"
        " --seed {params.seed} > {log} 2>&1"


for _dataset, _marker in PREPARED.items():

    rule:
        name:
            f"prepare_{_dataset}"
        input:
            RAW[_dataset],
        output:
            _marker,
        params:
            dataset=_dataset,
            out=lambda wildcards, output: os.path.dirname(output[0]),
            sets=" ".join(f"--set {shlex.quote(str(s))}" for s in (config.get("prepare") or {}).get(_dataset, [])),
        threads: 1
        resources:
            mem_mb=16000,
            runtime=12 * 60,
        conda:
            ENV
        log:
            f"results/logs/prepare/{_dataset}.log",
        shell:
            "OMP_NUM_THREADS={threads} sslbench prepare {params.dataset} --raw {input:q} --out {params.out:q}"
            " {params.sets} --no-progress > {log} 2>&1"
