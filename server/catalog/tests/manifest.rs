//! Manifest parsing and parameter checks.
use serde_json::Value;

use crate::catalog::ParamKind;
use crate::catalog::manifest::Manifest;
use crate::ids::EnvClass;

const HEAD: &str = "slug = \"demo\"\nname = \"Demo\"\nversion = \"0.1.0\"\nsummary = \"s\"\n\
                    description = \"d\"\n";

fn manifest(params: &str) -> anyhow::Result<Manifest> {
    Manifest::parse(&format!("{HEAD}{params}"))
}

fn error(params: &str) -> String {
    match manifest(params) {
        Ok(_) => panic!("manifest was accepted: {params}"),
        Err(e) => format!("{e:#}"),
    }
}

#[test]
fn integer_and_string_parameters_check_their_values() {
    let m = manifest(
        "[[parameters]]\nname = \"size\"\nlabel = \"Size\"\nhelp = \"h\"\nsection = \"S\"\n\
         kind = \"integer\"\nmin = 1\nmax = 10\ndefault = 2\n\
         [parameters.defaults]\nprod = 4\n\
         [[parameters]]\nname = \"owner\"\nlabel = \"Owner\"\nhelp = \"h\"\nsection = \"S\"\n\
         kind = \"string\"\npattern = \"^[a-z][a-z0-9-]{1,30}$\"\nmax_len = 31\n",
    );
    let m = match m {
        Ok(m) => m,
        Err(e) => panic!("{e:#}"),
    };
    let size = &m.parameters[0];
    assert_eq!(size.kind, ParamKind::Integer { min: 1, max: 10 });
    assert_eq!(size.default_for(EnvClass::Dev).as_deref(), Some("2"));
    assert_eq!(size.default_for(EnvClass::Prod).as_deref(), Some("4"));
    assert_eq!(size.check(" 7 "), Ok(Value::from(7)));
    assert_eq!(
        size.check("11"),
        Err("11 is out of range: use a number from 1 to 10".into())
    );
    assert!(
        size.check("ten")
            .is_err_and(|e| e.contains("not a whole number"))
    );
    let owner = &m.parameters[1];
    assert_eq!(owner.default_for(EnvClass::Dev), None);
    assert_eq!(owner.check("team-a"), Ok(Value::from("team-a")));
    assert!(
        owner
            .check("Team A")
            .is_err_and(|e| e.contains("required form"))
    );
    let long = format!("a{}", "b".repeat(31));
    assert_eq!(
        owner.check(&long),
        Err("32 characters is too long: use at most 31".into())
    );
}

#[test]
fn bad_manifests_are_refused_at_load() {
    let p = "[[parameters]]\nname = \"n\"\nlabel = \"L\"\nhelp = \"h\"\nsection = \"S\"\n";
    assert!(
        error(&format!(
            "{p}kind = \"cidr\"\n[parameters.defaults]\ndev = \"10.0.0.0/8\"\n"
        ))
        .contains("default for dev: 10.0.0.0/8 is too large")
    );
    assert!(error(&format!("{p}kind = \"colour\"\n")).contains("unknown kind 'colour'"));
    assert!(error(&format!("{p}kind = \"choice\"\n")).contains("at least one option"));
    assert!(error(&format!("{p}kind = \"integer\"\nmin = 3\nmax = 1\n")).contains("min <= max"));
    assert!(
        error(&format!(
            "{p}kind = \"string\"\nmax_len = 3\npattern = \"(a|b)\"\n"
        ))
        .contains("not supported")
    );
    assert!(
        error(&format!(
            "{p}kind = \"cidr\"\n[parameters.defaults]\nstaging = \"x\"\n"
        ))
        .contains("'staging' is not an environment class")
    );
    assert!(error(&format!("{p}kind = \"cidr\"\n{p}kind = \"cidr\"\n")).contains("declared twice"));
    assert!(error(&format!("{p}kind = \"cidr\"\ncolour = 1\n")).contains("unknown field"));
    assert!(Manifest::parse(&HEAD.replace("0.1.0", "1.0")).is_err());
    assert!(Manifest::parse(&HEAD.replace("\"demo\"", "\"Demo\"")).is_err());
}
