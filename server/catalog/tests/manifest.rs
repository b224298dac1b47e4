//! Manifest parsing and parameter checks.
use serde_json::Value;

use crate::catalog::ParamKind;
use crate::catalog::manifest::Manifest;
use crate::ids::EnvClass;

const HEAD: &str = "slug = \"demo\"\nname = \"Demo\"\nversion = \"0.1.0\"\nsummary = \"s\"\n\
                    description = \"d\"\nkind = \"standalone\"\nclasses = [\"dev\", \"prod\"]\n";

const EXAMPLE: &str = "\n[[examples]]\nname = \"default\"\ndescription = \"d\"\n";

fn manifest(params: &str) -> anyhow::Result<Manifest> {
    Manifest::parse(&format!("{HEAD}{params}{EXAMPLE}"))
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

const FLAG: &str = "[[parameters]]\nname = \"replica\"\nlabel = \"Replica\"\nhelp = \"h\"\n\
                    section = \"S\"\nkind = \"boolean\"\ndefault = false\n\
                    [parameters.defaults]\nprod = true\n";

#[test]
fn booleans_checks_and_examples_are_read_and_checked() {
    let text = format!(
        "{HEAD}settings = [\"home_region\"]\n{FLAG}\
         [[checks]]\nfield = \"replica\"\nassert = \"params.replica or env_class != 'prod'\"\n\
         message = \"prod needs a replica\"\n{EXAMPLE}[examples.params]\nreplica = true\n\
         [examples.settings]\nhome_region = \"eu-west-2\"\n\
         [[examples]]\nname = \"full\"\ndescription = \"everything\"\n"
    );
    let m = match Manifest::parse(&text) {
        Ok(m) => m,
        Err(e) => panic!("{e:#}"),
    };
    assert_eq!(m.classes, vec![EnvClass::Dev, EnvClass::Prod]);
    let flag = &m.parameters[0];
    assert_eq!(flag.default_for(EnvClass::Dev).as_deref(), Some("false"));
    assert_eq!(flag.default_for(EnvClass::Prod).as_deref(), Some("true"));
    assert_eq!(flag.check("on"), Ok(Value::Bool(true)));
    assert_eq!(flag.check("False"), Ok(Value::Bool(false)));
    assert!(
        flag.check("maybe")
            .is_err_and(|e| e.contains("use true or false"))
    );
    assert_eq!(m.checks.len(), 1);
    let default = m
        .example("default")
        .map(|e| (e.params.clone(), e.settings.clone()));
    assert_eq!(
        default,
        Some((
            [("replica".to_string(), "true".to_string())].into(),
            [("home_region".to_string(), Value::from("eu-west-2"))].into()
        ))
    );
    assert!(m.example("full").is_some());
}

#[test]
fn manifests_name_where_they_may_be_used_and_what_they_take() {
    let bad = |head: &str, rest: &str| match Manifest::parse(&format!("{head}{rest}{EXAMPLE}")) {
        Ok(_) => panic!("accepted: {head}{rest}"),
        Err(e) => format!("{e:#}"),
    };
    let base = "slug = \"demo\"\nname = \"Demo\"\nversion = \"0.1.0\"\nsummary = \"s\"\n\
                description = \"d\"\n";
    assert!(bad(base, "kind = \"thing\"\nclasses = [\"dev\"]\n").contains("kind 'thing'"));
    assert!(bad(base, "kind = \"account\"\nclasses = []\n").contains("at least one"));
    assert!(bad(base, "kind = \"account\"\nclasses = [\"qa\"]\n").contains("'qa'"));
    assert!(
        bad(
            base,
            "kind = \"account\"\naudience = \"all\"\nclasses = [\"core\"]\n"
        )
        .contains("audience 'all'")
    );
    assert!(
        bad(
            base,
            "kind = \"account\"\nclasses = [\"core\"]\nsettings = [\"colour\"]\n"
        )
        .contains("'colour' is not one of")
    );
    assert!(
        bad(base, "kind = \"workload\"\nclasses = [\"dev\"]\n").contains("at least one output")
    );
    assert!(
        bad(
            base,
            "kind = \"standalone\"\nclasses = [\"dev\"]\n[inputs.vpc_id]\noutput = \"VpcId\"\n"
        )
        .contains("only a workload")
    );
    assert!(
        bad(
            HEAD,
            &format!("{FLAG}[[checks]]\nfield = \"nope\"\nassert = \"true\"\nmessage = \"m\"\n")
        )
        .contains("field 'nope' is not a parameter")
    );
    assert!(
        bad(
            HEAD,
            &format!("{FLAG}[[checks]]\nfield = \"replica\"\nassert = \"(((\"\nmessage = \"m\"\n")
        )
        .contains("does not parse")
    );
    let no_default = Manifest::parse(&format!(
        "{HEAD}\n[[examples]]\nname = \"full\"\ndescription = \"d\"\n"
    ));
    assert!(no_default.is_err_and(|e| format!("{e:#}").contains("named 'default'")));
}
