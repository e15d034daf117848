//! Deterministic generation of realistic secret values, so no credential-shaped string is
//! committed and every run plants the same ones.

use base64::Engine as _;

/// A small xorshift generator: the same seed gives the same values on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn from(&mut self, alphabet: &str, n: usize) -> String {
        let a = alphabet.as_bytes();
        (0..n)
            .map(|_| char::from(a[usize::try_from(self.next() % a.len() as u64).unwrap()]))
            .collect()
    }
    pub fn alnum(&mut self, n: usize) -> String {
        self.from(ALNUM, n)
    }
    pub fn hex(&mut self, n: usize) -> String {
        self.from("0123456789abcdef", n)
    }
}

pub const ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
pub const UPPER_ALNUM: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
pub const B64: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
pub const LETTERS: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A planted secret: the rule that must report it, the line that carries it, and the exact
/// value that must never appear in any output. Multi-line values (key blocks) have `\n`.
#[derive(Clone, Debug)]
pub struct Planted {
    pub rule: &'static str,
    pub file: &'static str,
    pub text: String,
    pub value: String,
}

fn p(rule: &'static str, file: &'static str, text: String, value: String) -> Planted {
    Planted {
        rule,
        file,
        text,
        value,
    }
}

fn jwt(r: &mut Rng) -> String {
    let e = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let h = e.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = format!(
        r#"{{"sub":"u-{}","iat":1731000000,"role":"deploy"}}"#,
        r.hex(8)
    );
    format!(
        "{h}.{}.{}",
        e.encode(body),
        r.from(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-",
            43
        )
    )
}

/// One planted secret per secret rule.
pub fn planted(seed: u64) -> Vec<Planted> {
    let r = &mut Rng::new(seed);
    let mut v = Vec::new();
    let body = format!(
        "{}\n{}\n{}",
        r.from(B64, 64),
        r.from(B64, 64),
        r.from(B64, 40)
    );
    let gcp_body = format!(
        "-----BEGIN PRIVATE KEY-----\\n{}\\n-----END PRIVATE KEY-----\\n",
        r.from(B64, 64)
    );
    v.push(p(
        "ORC-SECRET-GCP-SERVICE-ACCOUNT",
        "sa.json",
        format!(r#"  "private_key": "{gcp_body}","#),
        gcp_body.clone(),
    ));
    let block = format!("-----BEGIN RSA PRIVATE KEY-----\n{body}\n-----END RSA PRIVATE KEY-----");
    v.push(p(
        "ORC-SECRET-PRIVATE-KEY",
        "deploy/id_rsa",
        block.clone(),
        block,
    ));
    let s = format!("AKIA{}", r.from("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
    v.push(p(
        "ORC-SECRET-AWS-KEY-ID",
        "conf/aws.env",
        format!("AWS_ACCESS_KEY_ID={s}"),
        s,
    ));
    let s = r.from(B64, 40);
    v.push(p(
        "ORC-SECRET-AWS-SECRET-KEY",
        "conf/aws.ini",
        format!("aws_secret_access_key = {s}"),
        s,
    ));
    let s = format!("ghp_{}", r.alnum(36));
    v.push(p(
        "ORC-SECRET-GITHUB-TOKEN",
        "ci/push.sh",
        format!("export GH_TOKEN={s}"),
        s,
    ));
    let s = format!("github_pat_{}_{}", r.alnum(22), r.alnum(59));
    v.push(p(
        "ORC-SECRET-GITHUB-FINE-GRAINED-PAT",
        "ci/pat.txt",
        format!("pat: {s}"),
        s,
    ));
    let s = format!("glpat-{}", r.alnum(20));
    v.push(p(
        "ORC-SECRET-GITLAB-TOKEN",
        "ci/gl.sh",
        format!("GL={s}"),
        s,
    ));
    let s = format!(
        "xoxb-{}-{}-{}",
        r.from("0123456789", 12),
        r.from("0123456789", 12),
        r.alnum(24)
    );
    v.push(p(
        "ORC-SECRET-SLACK-TOKEN",
        "bot.py",
        format!("SLACK = \"{s}\""),
        s,
    ));
    let s = format!(
        "hooks.slack.com/services/T{}/B{}/{}",
        r.from(UPPER_ALNUM, 8),
        r.from(UPPER_ALNUM, 8),
        r.alnum(24)
    );
    v.push(p(
        "ORC-SECRET-SLACK-WEBHOOK",
        "notify.sh",
        format!("curl -X POST https://{s}"),
        s,
    ));
    let s = format!("sk_live_{}", r.alnum(24));
    v.push(p(
        "ORC-SECRET-STRIPE-KEY",
        "pay.js",
        format!("const stripe = Stripe('{s}');"),
        s,
    ));
    let s = format!("AIza{}", r.alnum(35));
    v.push(p(
        "ORC-SECRET-GOOGLE-API-KEY",
        "maps.js",
        format!("const MAPS = \"{s}\";"),
        s,
    ));
    let s = format!("{}==", r.from(B64, 86));
    v.push(p("ORC-SECRET-AZURE-STORAGE-KEY", "azure.cfg", format!("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={s};EndpointSuffix=core.windows.net"), s));
    let s = format!("{}{}Q~{}", r.alnum(3), r.from("0123456789", 1), r.alnum(32));
    v.push(p(
        "ORC-SECRET-AZURE-AD-CLIENT-SECRET",
        "aad.env",
        format!("AZURE_CLIENT_SECRET=\"{s}\""),
        s,
    ));
    let s = format!("sk-ant-api03-{}", r.alnum(95));
    v.push(p(
        "ORC-SECRET-ANTHROPIC-KEY",
        "llm.py",
        format!("client = Anthropic(api_key=\"{s}\")"),
        s,
    ));
    let s = format!("sk-proj-{}T3BlbkFJ{}", r.alnum(20), r.alnum(20));
    v.push(p(
        "ORC-SECRET-OPENAI-KEY",
        "llm2.py",
        format!("openai.api_key = \"{s}\""),
        s,
    ));
    let s = format!("SK{}", r.hex(32));
    v.push(p(
        "ORC-SECRET-TWILIO",
        "sms.rb",
        format!("TWILIO_API_KEY = \"{s}\""),
        s,
    ));
    let s = format!("SG.{}.{}", r.alnum(22), r.alnum(43));
    v.push(p(
        "ORC-SECRET-SENDGRID",
        "mail.go",
        format!("key := \"{s}\""),
        s,
    ));
    let s = format!("npm_{}", r.alnum(36));
    v.push(p(
        "ORC-SECRET-NPM-TOKEN",
        ".npmrc",
        format!("//registry.npmjs.org/:_authToken={s}"),
        s,
    ));
    let s = format!("pypi-AgEIcHlwaS5vcmc{}", r.alnum(70));
    v.push(p(
        "ORC-SECRET-PYPI-TOKEN",
        ".pypirc",
        format!("password = {s}"),
        s,
    ));
    let s = format!(
        "{}-{}-{}-{}-{}",
        r.hex(8),
        r.hex(4),
        r.hex(4),
        r.hex(4),
        r.hex(12)
    );
    v.push(p(
        "ORC-SECRET-HEROKU",
        "deploy.env",
        format!("HEROKU_API_KEY={s}"),
        s,
    ));
    let s = format!("key-{}", r.hex(32));
    v.push(p(
        "ORC-SECRET-MAILGUN",
        "mg.php",
        format!("$mg = Mailgun::create('{s}');"),
        s,
    ));
    let s = format!("shpat_{}", r.hex(32));
    v.push(p(
        "ORC-SECRET-SHOPIFY",
        "shop.ts",
        format!("const token = '{s}';"),
        s,
    ));
    let s = format!("dop_v1_{}", r.hex(64));
    v.push(p(
        "ORC-SECRET-DIGITALOCEAN",
        "do.tf",
        format!("token = \"{s}\""),
        s,
    ));
    let s = format!("{}.{}.{}", r.alnum(24), r.alnum(6), r.alnum(27));
    v.push(p(
        "ORC-SECRET-DISCORD",
        "bot.js",
        format!("const DISCORD_BOT_TOKEN = \"{s}\";"),
        s,
    ));
    let s = format!("{}:AA{}", r.from("123456789", 10), r.alnum(33));
    v.push(p(
        "ORC-SECRET-TELEGRAM-BOT",
        "tg.py",
        format!("bot = Bot(\"{s}\")"),
        s,
    ));
    let s = format!("hvs.{}", r.alnum(95));
    v.push(p(
        "ORC-SECRET-VAULT-TOKEN",
        "vault.sh",
        format!("export VAULT_TOKEN={s}"),
        s,
    ));
    let s = format!("dapi{}", r.hex(32));
    v.push(p(
        "ORC-SECRET-DATABRICKS",
        "dbx.cfg",
        format!("token = {s}"),
        s,
    ));
    let s = format!("dp.st.{}", r.alnum(43));
    v.push(p(
        "ORC-SECRET-DOPPLER",
        "doppler.env",
        format!("DOPPLER_TOKEN={s}"),
        s,
    ));
    let s = format!("lin_api_{}", r.alnum(40));
    v.push(p(
        "ORC-SECRET-LINEAR",
        "linear.ts",
        format!("const key = \"{s}\";"),
        s,
    ));
    let s = format!("PMAK-{}-{}", r.hex(24), r.hex(34));
    v.push(p(
        "ORC-SECRET-POSTMAN",
        "postman.json",
        format!("\"apikey\": \"{s}\""),
        s,
    ));
    let s = format!("hf_{}", r.from(LETTERS, 34));
    v.push(p(
        "ORC-SECRET-HUGGINGFACE",
        "hf.py",
        format!("login(\"{s}\")"),
        s,
    ));
    let s = format!("glsa_{}_{}", r.alnum(32), r.hex(8));
    v.push(p(
        "ORC-SECRET-GRAFANA",
        "grafana.ini",
        format!("sa = {s}"),
        s,
    ));
    let s = format!("ATATT3{}", r.alnum(186));
    v.push(p(
        "ORC-SECRET-ATLASSIAN",
        "jira.py",
        format!("JIRA = \"{s}\""),
        s,
    ));
    let s = format!(
        "AGE-SECRET-KEY-1{}",
        r.from("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)
    );
    v.push(p("ORC-SECRET-AGE-KEY", "keys.txt", s.clone(), s));
    let s = format!("LTAI{}", r.alnum(20));
    v.push(p(
        "ORC-SECRET-ALIBABA",
        "oss.yaml",
        format!("access_key_id: {s}"),
        s,
    ));
    let s = format!("NRAK-{}", r.from(UPPER_ALNUM, 27));
    v.push(p("ORC-SECRET-NEW-RELIC", "nr.yml", format!("api: {s}"), s));
    let s = jwt(r);
    v.push(p(
        "ORC-SECRET-JWT",
        "auth.http",
        format!("Authorization: Bearer {s}"),
        s,
    ));
    let s = r.alnum(14);
    v.push(p(
        "ORC-SECRET-URL-CREDENTIALS",
        "db.env",
        format!("DATABASE_URL=postgres://app_rw:{s}@db.prod.internal:5432/app"),
        s,
    ));
    let s = r.alnum(32);
    v.push(p(
        "ORC-SECRET-GENERIC",
        "settings.py",
        format!("SIGNING_KEY = \"{s}\""),
        s,
    ));
    v
}
