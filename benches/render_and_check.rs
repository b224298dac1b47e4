//! Render + policy check of blueprints, as the server does them (rules loaded once at start):
//! `cargo bench --bench render_and_check [-- BLUEPRINT CLASS [EXAMPLE]]`. Prints the median and
//! the 90th percentile of each phase over 50 runs after 5 warm-ups.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use stackgate::catalog::{Catalog, PolicyEngine, RenderContext};
use stackgate::ids::EnvClass;

fn percentile(mut v: Vec<Duration>, p: f64) -> Duration {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let slug = args.first().map(String::as_str).unwrap_or("web-app");
    let class: EnvClass = args
        .get(1)
        .map(String::as_str)
        .unwrap_or("prod")
        .parse()
        .map_err(anyhow::Error::msg)?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let catalog = Catalog::load(&root.join("cloudformation"))?;
    let t0 = Instant::now();
    let policy = PolicyEngine::load(&root.join("cloudformation/rules"))?;
    println!("rules loaded once in {:?}", t0.elapsed());
    let bp = catalog
        .get(slug)
        .ok_or_else(|| anyhow::anyhow!("no blueprint {slug}"))?;
    // The example with every optional feature on: the largest template of the blueprint.
    let example_name = args.get(2).map(String::as_str).unwrap_or("full");
    let example = bp
        .example(example_name)
        .ok_or_else(|| anyhow::anyhow!("{slug} has no example {example_name}"))?;
    let raw: BTreeMap<String, String> = bp.example_values(example);
    let (mut render, mut check) = (Vec::new(), Vec::new());
    let mut resources = 0;
    let mut last_len = 0;
    for i in 0..55 {
        // A new name each time: a new template, which the engine has not checked before.
        let mut ctx = RenderContext::new(class, "eu-west-2", &format!("bench{i}"), "payments");
        ctx.account.id = "111111111111".into();
        bp.apply_example(example, &mut ctx);
        let t = Instant::now();
        let rendered = bp
            .render(&ctx, &raw)
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        let r = t.elapsed();
        let t = Instant::now();
        let report = policy.check(&rendered.body);
        let c = t.elapsed();
        anyhow::ensure!(report.passed, "policy failed: {:?}", report.results);
        resources = rendered.resources.iter().map(|(_, n)| n).sum();
        last_len = rendered.body.len();
        if i == 0 {
            // The same file for cfn-lint and checkov to be timed on (the README's comparison).
            std::fs::write(
                std::env::temp_dir().join(format!("{slug}-{class}.json")),
                &rendered.body,
            )?;
        }
        if i >= 5 {
            render.push(r);
            check.push(c);
        }
    }
    let total: Vec<Duration> = render.iter().zip(&check).map(|(a, b)| *a + *b).collect();
    println!(
        "{slug} {class} ({example_name}): {resources} resources, {} bytes",
        last_len
    );
    for (what, v) in [("render", render), ("policy check", check), ("both", total)] {
        println!(
            "  {what:13} median {:>9.2?}  p90 {:>9.2?}",
            percentile(v.clone(), 0.5),
            percentile(v, 0.9)
        );
    }
    Ok(())
}
