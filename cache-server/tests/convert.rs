//! Conversion between protocol messages and cache-core documents, on real data: what the
//! reference client (v0.76) sent (`data/client-*.pb`, captured on the wire), what the
//! reference server stored for it (`data/reference-*.json`, read from its Redis), and
//! what scancache's own scanner stores; plus one message with every field set.

use cache_core::{ArtifactInfo, BlobInfo};
use cache_server::proto::{
    Json,
    cache::{self as pc, PutArtifactRequest, PutBlobRequest},
    common as pb,
};
use prost::Message;
use serde_json::Value;

use crate::canonical;

pub(crate) fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn put_blob(name: &str) -> PutBlobRequest {
    PutBlobRequest::decode(&data(name)[..]).unwrap()
}

fn json(name: &str) -> Value {
    serde_json::from_slice(&data(name)).unwrap()
}

/// message → document → message gives the message back (up to empty sub-messages).
fn check_blob_round_trip(msg: &pc::BlobInfo) {
    let doc = BlobInfo::from(msg.clone());
    let back = pc::BlobInfo::try_from(&doc).unwrap();
    assert_eq!(
        canonical(&back),
        canonical(msg),
        "message → document → message changed it"
    );
}

#[test]
fn client_messages_round_trip_through_documents() {
    for name in ["client-put-blob-lang.pb", "client-put-blob-os.pb"] {
        let req = put_blob(name);
        let msg = req.blob_info.unwrap();
        assert!(msg.schema_version == 2 && !msg.diff_id.is_empty(), "{name}");
        check_blob_round_trip(&msg);
    }
    let req = PutArtifactRequest::decode(&data("client-put-artifact.pb")[..]).unwrap();
    let msg = req.artifact_info.unwrap();
    let doc = ArtifactInfo::from(msg.clone());
    assert_eq!(
        canonical(&pc::ArtifactInfo::try_from(&doc).unwrap()),
        canonical(&msg)
    );
}

#[test]
fn documents_are_what_the_reference_server_stored() {
    for (request, stored) in [
        ("client-put-blob-lang.pb", "reference-blob-lang.json"),
        ("client-put-blob-os.pb", "reference-blob-os.json"),
    ] {
        let doc = BlobInfo::from(put_blob(request).blob_info.unwrap());
        assert_eq!(
            serde_json::to_value(&doc).unwrap(),
            json(stored),
            "{request} stored differently from {stored}"
        );
    }
    let req = PutArtifactRequest::decode(&data("client-put-artifact.pb")[..]).unwrap();
    let doc = ArtifactInfo::from(req.artifact_info.unwrap());
    let mut want = json("reference-artifact.json");
    // The reference writes an empty DockerVersion; cache-core leaves empty fields out
    // (docs/documents.md), which Go reads as the same empty string.
    assert_eq!(want["DockerVersion"], "");
    want.as_object_mut().unwrap().remove("DockerVersion");
    assert_eq!(serde_json::to_value(&doc).unwrap(), want);
}

#[test]
fn reference_documents_round_trip_through_messages() {
    for stored in ["reference-blob-lang.json", "reference-blob-os.json"] {
        let original = json(stored);
        let doc: BlobInfo = serde_json::from_value(original.clone()).unwrap();
        let msg = pc::BlobInfo::try_from(&doc).unwrap();
        let back = BlobInfo::from(msg);
        assert_eq!(serde_json::to_value(&back).unwrap(), original, "{stored}");
    }
    let lang: BlobInfo = serde_json::from_value(json("reference-blob-lang.json")).unwrap();
    let msg = pc::BlobInfo::try_from(&lang).unwrap();
    // The fields really were read, not dropped on both ways.
    assert_eq!(msg.applications.len(), 2);
    assert_eq!(
        msg.applications[0].packages[0].file_path,
        "app/node_modules/left-pad/package.json"
    );
    assert_eq!(msg.secrets[0].findings[0].rule_id, "github-pat");
    assert_eq!(msg.secrets[0].findings[0].offset, 13);
    let failure = &msg.misconfigurations[0].failures[0];
    assert_eq!(failure.policy_metadata.as_ref().unwrap().id, "DS-0002");
    assert_eq!(failure.cause_metadata.as_ref().unwrap().start_line, 2);
}

/// What scancache's own scanner stores converts to messages and back unchanged.
#[tokio::test]
async fn scancache_documents_round_trip_through_messages() {
    use cache_core::{Cache, CacheOptions};
    let cache = cache_mem::MemCache::new(&CacheOptions::default());
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut blobs = 0;
    for sample in ["debian.tar", "alpine.tar", "pair.tar"] {
        let path = std::path::Path::new(root).join("samples").join(sample);
        let report = cache_scan::scan(&path, &cache, &Default::default())
            .await
            .unwrap();
        let keys = cache_scan::image_keys_of(&path, &Default::default())
            .await
            .unwrap();
        assert_eq!(keys.blobs.len(), report.diff_ids.len());
        for id in &keys.blobs {
            let doc = cache.get_blob(id).await.unwrap().unwrap();
            let msg = pc::BlobInfo::try_from(&doc).unwrap();
            assert_eq!(BlobInfo::from(msg), doc, "{sample} {id}");
            blobs += 1;
        }
        let artifact = cache.get_artifact(&keys.artifact).await.unwrap().unwrap();
        let msg = pc::ArtifactInfo::try_from(&artifact).unwrap();
        assert_eq!(ArtifactInfo::from(msg), artifact, "{sample}");
    }
    assert!(blobs >= 5);
}

fn s(v: &str) -> String {
    v.to_owned()
}

fn layer(n: i64) -> Option<pb::Layer> {
    Some(pb::Layer {
        digest: format!("sha256:{n:064x}"),
        diff_id: format!("sha256:{:064x}", n + 1),
        created_by: format!("RUN step {n}"),
        size: 1000 + n,
    })
}

fn code() -> Option<pb::Code> {
    Some(pb::Code {
        lines: vec![pb::Line {
            number: 3,
            content: s("USER root"),
            is_cause: true,
            annotation: s("note"),
            truncated: true,
            highlighted: s("\u{1b}[1mUSER\u{1b}[0m root"),
            first_cause: true,
            last_cause: true,
        }],
    })
}

/// A package with every field set.
pub(crate) fn full_package(n: i32) -> pb::Package {
    pb::Package {
        id: format!("pkg{n}@1.0-{n}"),
        name: format!("pkg{n}"),
        version: s("1.0"),
        release: format!("{n}"),
        epoch: n,
        identifier: Some(pb::PkgIdentifier {
            purl: format!("pkg:npm/pkg{n}@1.0"),
            bom_ref: s("ref"),
            uid: s("0123abcd"),
        }),
        arch: s("amd64"),
        src_name: s("src"),
        src_version: s("1.1"),
        src_release: s("2"),
        src_epoch: n + 1,
        licenses: vec![s("MIT"), s("Apache-2.0")],
        locations: vec![pb::Location {
            start_line: 4,
            end_line: 9,
        }],
        layer: layer(7),
        file_path: s("app/package-lock.json"),
        depends_on: vec![s("dep@2")],
        digest: s("sha1:abcd"),
        dev: true,
        indirect: true,
        maintainer: s("M <m@example.org>"),
        relationship: 3,
        analyzed_by: s("npm"),
        repository: Some(pb::PackageRepository {
            class: s("official"),
        }),
        modularitylabel: s("nodejs:18:1"),
        build_info: Some(pb::BuildInfo {
            content_sets: vec![s("rhel-8")],
            nvr: s("ubi8-1"),
            arch: s("x86_64"),
        }),
        installed_files: vec![s("usr/bin/x")],
    }
}

fn misconf_result(n: i32) -> pb::MisconfResult {
    pb::MisconfResult {
        namespace: s("builtin.dockerfile.DS002"),
        message: format!("message {n}"),
        policy_metadata: Some(pb::PolicyMetadata {
            id: s("DS-0002"),
            adv_id: s("AVD-DS-0002"),
            r#type: s("Dockerfile Security Check"),
            title: s("root"),
            description: s("d"),
            severity: s("HIGH"),
            recommended_actions: s("fix"),
            references: vec![s("https://example.org/r")],
            aliases: vec![s("DS002")],
        }),
        cause_metadata: Some(pb::CauseMetadata {
            resource: s("r"),
            provider: s("Dockerfile"),
            service: s("general"),
            start_line: 2,
            end_line: 3,
            code: code(),
            rendered_cause: Some(pb::RenderedCause {
                raw: s("raw"),
                highlighted: s("hl"),
            }),
        }),
        query: s("data.builtin.dockerfile.DS002.deny"),
    }
}

/// A blob message with every field of every message set.
pub(crate) fn full_blob() -> pc::BlobInfo {
    use prost_types::value::Kind;
    pc::BlobInfo {
        schema_version: 2,
        os: Some(pb::Os {
            family: s("ubuntu"),
            name: s("22.04"),
            eosl: true,
            extended: true,
            supplier: s("seal"),
        }),
        repository: Some(pb::Repository {
            family: s("alpine"),
            release: s("3.20"),
        }),
        package_infos: vec![pb::PackageInfo {
            file_path: s("var/lib/dpkg/status"),
            packages: vec![full_package(1), full_package(2)],
        }],
        applications: vec![pb::Application {
            r#type: s("npm"),
            file_path: s("app/package-lock.json"),
            packages: vec![full_package(3)],
        }],
        misconfigurations: vec![pb::Misconfiguration {
            file_type: s("dockerfile"),
            file_path: s("Dockerfile"),
            successes: vec![misconf_result(1)],
            warnings: vec![misconf_result(2)],
            failures: vec![misconf_result(3)],
        }],
        opaque_dirs: vec![s("etc/")],
        whiteout_files: vec![s("etc/gone")],
        digest: format!("sha256:{:064x}", 1),
        diff_id: format!("sha256:{:064x}", 2),
        custom_resources: vec![pb::CustomResource {
            r#type: s("custom"),
            file_path: s("x.conf"),
            layer: layer(3),
            data: Some(prost_types::Value {
                kind: Some(Kind::StructValue(prost_types::Struct {
                    fields: [(
                        s("k"),
                        prost_types::Value {
                            kind: Some(Kind::NumberValue(1.5)),
                        },
                    )]
                    .into(),
                })),
            }),
        }],
        secrets: vec![pb::Secret {
            filepath: s("/app/.env"),
            findings: vec![pb::SecretFinding {
                rule_id: s("github-pat"),
                category: s("GitHub"),
                severity: s("CRITICAL"),
                title: s("GitHub Personal Access Token"),
                start_line: 1,
                end_line: 2,
                code: code(),
                r#match: s("TOKEN=****"),
                layer: layer(5),
                offset: 13,
            }],
        }],
        licenses: vec![pb::LicenseFile {
            license_type: 3,
            file_path: s("LICENSE"),
            pkg_name: s("pkg1"),
            fingings: vec![pb::LicenseFinding {
                category: 4,
                name: s("MIT"),
                confidence: 0.5,
                link: s("https://example.org/mit"),
            }],
            layer: layer(9),
        }],
        size: 123_456,
        created_by: s("COPY . /app"),
        build_info: Some(pb::BuildInfo {
            content_sets: vec![s("rhel-9")],
            nvr: s("ubi9-1"),
            arch: s("aarch64"),
        }),
        crypto_assets: vec![pb::CryptoAsset {
            kind: s("certificate"),
            key_type: s("public"),
            identity: Some(pb::CryptoIdentity {
                method: s("sha256"),
                value: s("ab"),
                parameters: s("p"),
            }),
            name: s("cert"),
            certificate: Some(pb::CryptoCertificate {
                subject: s("CN=x"),
                issuer: s("CN=ca"),
                serial_number: s("01"),
                not_before: Some(prost_types::Timestamp {
                    seconds: 1_700_000_000,
                    nanos: 0,
                }),
                not_after: Some(prost_types::Timestamp {
                    seconds: 1_800_000_000,
                    nanos: 500_000_000,
                }),
                format: s("X.509"),
                key_usage: vec![s("digitalSignature")],
                extended_key_usage: vec![s("serverAuth")],
                dns_names: vec![s("example.org")],
                email_addresses: vec![s("a@example.org")],
                ip_addresses: vec![s("127.0.0.1")],
                uris: vec![s("spiffe://x")],
                basic_constraints_valid: true,
                is_ca: true,
                max_path_len: 2,
                max_path_len_zero: true,
            }),
            key: Some(pb::CryptoKey {
                size: 2048,
                curve: s("P-256"),
                encrypted: true,
            }),
            algorithm: Some(pb::CryptoAlgorithm {
                family: s("RSA"),
                primitive: s("signature"),
                classical_security_level: 112,
                nist_quantum_security_level: 1,
            }),
            relationships: vec![pb::CryptoRelationship {
                r#type: s("signs"),
                related_asset: Some(pb::CryptoDescriptor {
                    kind: s("key"),
                    key_type: s("private"),
                    identity: Some(pb::CryptoIdentity {
                        method: s("spki-sha256"),
                        value: s("cd"),
                        parameters: String::new(),
                    }),
                }),
            }],
            file_path: s("etc/ssl/cert.pem"),
            format: s("X.509"),
            encoding: s("PEM"),
            layer: layer(11),
        }],
    }
}

#[test]
fn every_field_of_a_blob_survives_a_document() {
    let msg = full_blob();
    // Exactly, not only up to empty sub-messages: every field is set.
    assert_eq!(
        pc::BlobInfo::try_from(&BlobInfo::from(msg.clone())).unwrap(),
        msg
    );
    // And it lands where the reference keeps it.
    let doc = serde_json::to_value(BlobInfo::from(msg)).unwrap();
    let pkg = &doc["PackageInfos"][0]["Packages"][0];
    assert_eq!(pkg["Identifier"]["PURL"], "pkg:npm/pkg1@1.0");
    assert_eq!(pkg["Relationship"], "direct");
    assert_eq!(pkg["Layer"]["DiffID"], format!("sha256:{:064x}", 8));
    assert_eq!(pkg["Locations"][0]["StartLine"], 4);
    assert_eq!(doc["OS"]["extended"], true);
    assert_eq!(doc["OS"]["Supplier"], "seal");
    assert_eq!(doc["Licenses"][0]["Type"], "license-file");
    assert_eq!(doc["Licenses"][0]["Findings"][0]["Category"], "notice");
    let failure = &doc["Misconfigurations"][0]["Failures"][0];
    assert_eq!(failure["AVDID"], "AVD-DS-0002");
    assert_eq!(failure["RenderedCause"]["Raw"], "raw");
    assert_eq!(doc["CustomResources"][0]["Data"]["k"], 1.5);
    assert_eq!(
        doc["CryptoAssets"][0]["Certificate"]["DNSNames"][0],
        "example.org"
    );
}

#[test]
fn every_field_of_an_artifact_survives_a_document() {
    let msg = pc::ArtifactInfo {
        schema_version: 1,
        architecture: s("arm64"),
        created: Some(prost_types::Timestamp {
            seconds: 1_579_798_386,
            nanos: 686_519_038,
        }),
        docker_version: s("18.06.1-ce"),
        os: s("linux"),
        history_packages: vec![full_package(4)],
        secret: full_blob().secrets.pop(),
    };
    let doc = ArtifactInfo::from(msg.clone());
    assert_eq!(doc.created, "2020-01-23T16:53:06.686519038Z");
    assert_eq!(pc::ArtifactInfo::try_from(&doc).unwrap(), msg);
}

#[test]
fn documents_of_the_wrong_shape_are_errors_naming_the_field() {
    let doc: BlobInfo = serde_json::from_str(
        r#"{"SchemaVersion":2,"Applications":[{"Type":"npm","Packages":[{"Name":"x","Locations":[{"StartLine":"one"}]}]}]}"#,
    )
    .unwrap();
    let err = pc::BlobInfo::try_from(&doc).unwrap_err().to_string();
    assert!(
        err.contains("Applications[0].Packages[0].Locations[0].StartLine"),
        "{err}"
    );
    let doc: BlobInfo =
        serde_json::from_str(r#"{"SchemaVersion":2,"Secrets":{"FilePath":"x"}}"#).unwrap();
    let err = pc::BlobInfo::try_from(&doc).unwrap_err().to_string();
    assert!(err.starts_with("Secrets: expected a list"), "{err}");
}

#[test]
fn json_form_round_trips_and_names_every_field() {
    let msg = full_blob();
    let value = msg.to_json();
    assert_eq!(pc::BlobInfo::from_json(&value).unwrap(), msg);
    assert_eq!(value["size"], "123456", "int64 is a string");
    assert_eq!(value["licenses"][0]["license_type"], "LICENSE_FILE");
    assert_eq!(value["licenses"][0]["fingings"][0]["category"], "NOTICE");
    assert_eq!(
        value["crypto_assets"][0]["certificate"]["not_after"],
        "2027-01-15T08:00:00.500Z"
    );
    // Unset fields are written too: an empty message names every field.
    let empty = pc::BlobInfo::default().to_json();
    assert_eq!(empty["os"], Value::Null);
    assert_eq!(empty["package_infos"], serde_json::json!([]));
    assert_eq!(empty["digest"], "");
    assert_eq!(empty["size"], "0");
    assert_eq!(empty.as_object().unwrap().len(), 17);
    // lowerCamel names are read like proto names.
    let camel =
        serde_json::json!({"diffId": "d", "blobInfo": {"schemaVersion": 2, "createdBy": "x"}});
    let req = PutBlobRequest::from_json(&camel).unwrap();
    assert_eq!(req.diff_id, "d");
    assert_eq!(req.blob_info.unwrap().created_by, "x");
}
