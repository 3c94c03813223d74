//! `PutBlob`'s fast path (`convert::transcode`) against the general path it stands in
//! for: decode with prost, convert with `BlobInfo::from`, serialize. Wherever the fast
//! path answers, it must store the same bytes; everything it leaves to the general path
//! must be something that path handles (or refuses) itself.

use cache_core::{BlobInfo, codec};
use cache_server::{
    convert::transcode,
    proto::{
        cache::{self as pc, PutBlobRequest},
        common as pb,
    },
};
use prost::Message;

use crate::convert::{data, full_blob, full_package};

/// Compares the two paths on one request body; true when the fast path took it.
fn same_as_general_path(body: &[u8]) -> bool {
    let general = PutBlobRequest::decode(body);
    let Some(fast) = transcode::put_blob_request(body) else {
        return false;
    };
    let req = general.expect("the fast path took a request protobuf cannot decode");
    assert_eq!(fast.diff_id, req.diff_id);
    let blob = req
        .blob_info
        .expect("the fast path took a request without a blob");
    let want = codec::encode(&BlobInfo::from(blob));
    assert_eq!(
        String::from_utf8(fast.document).unwrap(),
        String::from_utf8(want).unwrap()
    );
    true
}

fn request(blob: pc::BlobInfo) -> Vec<u8> {
    PutBlobRequest {
        diff_id: format!("sha256:{:064x}", 1),
        blob_info: Some(blob),
    }
    .encode_to_vec()
}

/// `full_blob` without the layer-level fields the fast path leaves to the general one.
fn fast_blob() -> pc::BlobInfo {
    pc::BlobInfo {
        misconfigurations: Vec::new(),
        secrets: Vec::new(),
        licenses: Vec::new(),
        custom_resources: Vec::new(),
        build_info: None,
        crypto_assets: Vec::new(),
        ..full_blob()
    }
}

#[test]
fn what_the_reference_client_sends_is_stored_byte_for_byte_as_before() {
    assert!(same_as_general_path(&data("client-put-blob-os.pb")));
    // The language layer carries secrets and a misconfiguration: the general path's.
    let lang = data("client-put-blob-lang.pb");
    assert!(!same_as_general_path(&lang));
    let mut req = PutBlobRequest::decode(&lang[..]).unwrap();
    let blob = req.blob_info.as_mut().unwrap();
    assert!(!blob.secrets.is_empty() || !blob.misconfigurations.is_empty());
    blob.secrets.clear();
    blob.misconfigurations.clear();
    assert!(same_as_general_path(&req.encode_to_vec()));
}

#[test]
fn every_package_field_is_transcoded() {
    assert!(same_as_general_path(&request(fast_blob())));
    // Each layer-level field outside the fast path sends the request to the general one.
    let full = full_blob();
    assert!(!same_as_general_path(&request(full.clone())));
    for blob in [
        pc::BlobInfo {
            misconfigurations: full.misconfigurations.clone(),
            ..fast_blob()
        },
        pc::BlobInfo {
            secrets: full.secrets.clone(),
            ..fast_blob()
        },
        pc::BlobInfo {
            licenses: full.licenses.clone(),
            ..fast_blob()
        },
        pc::BlobInfo {
            custom_resources: full.custom_resources.clone(),
            ..fast_blob()
        },
        pc::BlobInfo {
            build_info: full.build_info.clone(),
            ..fast_blob()
        },
        pc::BlobInfo {
            crypto_assets: full.crypto_assets.clone(),
            ..fast_blob()
        },
    ] {
        assert!(!same_as_general_path(&request(blob)));
    }
}

#[test]
fn zero_values_and_odd_strings_are_written_as_the_general_path_writes_them() {
    let empty_parts = pb::Package {
        id: "a\"b\\c\td\u{1}é😀".into(),
        epoch: -1,
        src_epoch: i32::MIN,
        relationship: 99,
        identifier: Some(pb::PkgIdentifier::default()),
        layer: Some(pb::Layer {
            size: -5,
            ..pb::Layer::default()
        }),
        locations: vec![
            pb::Location::default(),
            pb::Location {
                start_line: 0,
                end_line: 3,
            },
        ],
        repository: Some(pb::PackageRepository::default()),
        build_info: Some(pb::BuildInfo::default()),
        ..pb::Package::default()
    };
    let cases = [
        pc::BlobInfo::default(),
        pc::BlobInfo {
            schema_version: -7,
            os: Some(pb::Os::default()),
            repository: Some(pb::Repository::default()),
            package_infos: vec![
                pb::PackageInfo::default(),
                pb::PackageInfo {
                    file_path: String::new(),
                    packages: vec![pb::Package::default(), empty_parts.clone()],
                },
            ],
            applications: vec![pb::Application::default()],
            opaque_dirs: vec![String::new(), "dir/".into()],
            whiteout_files: vec!["x".into()],
            size: i64::MIN,
            ..pc::BlobInfo::default()
        },
        pc::BlobInfo {
            os: Some(pb::Os {
                extended: true,
                ..pb::Os::default()
            }),
            ..pc::BlobInfo::default()
        },
        pc::BlobInfo {
            os: Some(pb::Os {
                supplier: "s".into(),
                ..pb::Os::default()
            }),
            ..pc::BlobInfo::default()
        },
    ];
    for blob in cases {
        assert!(same_as_general_path(&request(blob)));
    }
}

#[test]
fn wire_order_repeats_and_unknown_fields_follow_protobuf() {
    // Fields in reverse order: the document's order does not depend on the wire's.
    let blob = pc::BlobInfo {
        package_infos: vec![pb::PackageInfo {
            file_path: "db".into(),
            packages: vec![full_package(4)],
        }],
        ..pc::BlobInfo::default()
    };
    let mut reversed = Vec::new();
    let pkg = full_package(4).encode_to_vec();
    let mut fields = Vec::new();
    let mut rest = &pkg[..];
    while !rest.is_empty() {
        let start = pkg.len() - rest.len();
        let key = prost::encoding::decode_varint(&mut rest).unwrap();
        let wire = prost::encoding::WireType::try_from(key & 7).unwrap();
        prost::encoding::skip_field(wire, (key >> 3) as u32, &mut rest, Default::default())
            .unwrap();
        fields.push(pkg[start..pkg.len() - rest.len()].to_vec());
    }
    for f in fields.iter().rev() {
        reversed.extend_from_slice(f);
    }
    // A repeated singular string: the last one wins.
    reversed.extend_from_slice(
        &pb::Package {
            name: "second".into(),
            ..pb::Package::default()
        }
        .encode_to_vec(),
    );
    let mut info = Vec::new();
    prost::encoding::string::encode(1, &"db".to_string(), &mut info);
    prost::encoding::bytes::encode(2, &reversed, &mut info);
    let mut blob_bytes = Vec::new();
    prost::encoding::bytes::encode(3, &info, &mut blob_bytes);
    let mut body = Vec::new();
    prost::encoding::bytes::encode(3, &blob_bytes, &mut body);
    prost::encoding::string::encode(1, &format!("sha256:{:064x}", 2), &mut body);
    assert!(same_as_general_path(&body));
    let stored: serde_json::Value =
        serde_json::from_slice(&transcode::put_blob_request(&body).unwrap().document).unwrap();
    assert_eq!(stored["PackageInfos"][0]["Packages"][0]["Name"], "second");
    drop(blob);

    // An unknown field (which protobuf skips) and a sub-message sent twice (which it
    // merges) are the general path's.
    let mut unknown = request(fast_blob());
    prost::encoding::string::encode(9, &"later".to_string(), &mut unknown);
    assert!(!same_as_general_path(&unknown));
    assert!(PutBlobRequest::decode(&unknown[..]).is_ok());
    let mut twice = request(fast_blob());
    prost::encoding::message::encode(3, &pc::BlobInfo::default(), &mut twice);
    assert!(!same_as_general_path(&twice));
}

#[test]
fn damaged_requests_are_left_to_the_general_path() {
    let body = request(fast_blob());
    // Every truncation, and every single-byte change at a few positions of each kind.
    for len in 0..body.len() {
        same_as_general_path(&body[..len]);
    }
    for i in (0..body.len()).step_by(7) {
        for b in [0x00, 0x01, 0x7f, 0x80, 0xff, b'"'] {
            let mut damaged = body.clone();
            damaged[i] = b;
            same_as_general_path(&damaged);
        }
    }
}
