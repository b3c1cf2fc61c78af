# Data: the embedded synthetic dataset. Real datasets are prepared by hand (the error names the steps).


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
