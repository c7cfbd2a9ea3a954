// The peer sync wire format (lb/sync_codec.h): round trip, batching, authentication, malformed
// input, forward compatibility, replay protection and the merge rule.
#include "sync_codec.h"

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <string>
#include <variant>
#include <vector>

namespace ikelb {
namespace {

const std::vector<uint8_t> kKey(32, 0x5a);

SyncAffinity entry(int n, const std::string& backend = "gw1", uint32_t age = 100) {
  SyncAffinity r;
  r.vs = "vpn";
  r.backend = backend;
  r.client = IpAddress::must_parse(n % 2 ? "100.64.0." + std::to_string(n % 250)
                                         : "2001:db8:100::" + std::to_string(n));
  r.age_ms = age + n;
  return r;
}

SyncMessage must_decode(const std::vector<uint8_t>& d, const std::vector<uint8_t>& key = kKey) {
  auto r = decode_sync(d, key);
  if (auto* e = std::get_if<std::string>(&r)) ADD_FAILURE() << *e;
  return std::holds_alternative<SyncMessage>(r) ? std::get<SyncMessage>(r) : SyncMessage{};
}

std::string refusal(const std::vector<uint8_t>& d, const std::vector<uint8_t>& key = kKey) {
  auto r = decode_sync(d, key);
  return std::holds_alternative<std::string>(r) ? std::get<std::string>(r) : "accepted";
}

// Re-signs a datagram edited by a test (as a peer holding the key would).
std::vector<uint8_t> resign(std::vector<uint8_t> d) {
  d.resize(d.size() - kSyncMacBytes);
  unsigned n = 0;
  uint8_t mac[EVP_MAX_MD_SIZE];
  HMAC(EVP_sha256(), kKey.data(), int(kKey.size()), d.data(), d.size(), mac, &n);
  d.insert(d.end(), mac, mac + n);
  return d;
}

TEST(SyncCodec, RoundTripOfBothFamiliesAndTheHeaderLayout) {
  std::vector<SyncAffinity> in = {entry(1), entry(2, "gw-two", 0), entry(3, std::string(255, 'x'))};
  SyncHeader h{.type = kSyncRecords, .sender = 7, .seq = 41, .sent_ms = 1700000000123};
  auto out = encode_sync(h, in, kKey);
  ASSERT_EQ(out.size(), 1u);
  const auto& d = out[0];
  EXPECT_EQ(std::string(d.begin(), d.begin() + 4), "IKSY");
  EXPECT_EQ(d[4], 1);  // version
  EXPECT_EQ(d[5], kSyncRecords);
  EXPECT_EQ(d[11], 7);   // sender, big-endian
  EXPECT_EQ(d[19], 41);  // sequence
  EXPECT_EQ(d[29], 3);   // record count
  SyncMessage m = must_decode(d);
  EXPECT_EQ(m.header.sender, 7u);
  EXPECT_EQ(m.header.seq, 41u);
  EXPECT_EQ(m.header.sent_ms, 1700000000123u);
  EXPECT_EQ(m.affinity, in);
  EXPECT_EQ(m.unknown_records, 0u);
}

TEST(SyncCodec, BatchesAreBoundedAndNumberedInOrder) {
  std::vector<SyncAffinity> in;
  for (int i = 0; i < 200; i++) in.push_back(entry(i));
  auto out = encode_sync({.sender = 1, .seq = 10, .sent_ms = 5}, in, kKey, 1000);
  ASSERT_GT(out.size(), 3u);
  std::vector<SyncAffinity> all;
  for (size_t i = 0; i < out.size(); i++) {
    EXPECT_LE(out[i].size(), 1000u);
    SyncMessage m = must_decode(out[i]);
    EXPECT_EQ(m.header.seq, 10 + i);
    all.insert(all.end(), m.affinity.begin(), m.affinity.end());
  }
  EXPECT_EQ(all, in);
  for (const auto& d : encode_sync({.sender = 1}, in, kKey)) EXPECT_LE(d.size(), kSyncMaxDatagram);
}

TEST(SyncCodec, SnapshotRequestCarriesNoRecords) {
  auto out = encode_sync({.type = kSyncSnapshotRequest, .sender = 3, .seq = 1, .sent_ms = 9},
                         {entry(1)}, kKey);
  ASSERT_EQ(out.size(), 1u);
  SyncMessage m = must_decode(out[0]);
  EXPECT_EQ(m.header.type, kSyncSnapshotRequest);
  EXPECT_TRUE(m.affinity.empty());
}

TEST(SyncCodec, SnapshotEndCarriesNoRecordsAndIsAuthenticated) {
  auto out = encode_sync({.type = kSyncSnapshotEnd, .sender = 4, .seq = 7, .sent_ms = 11},
                         {entry(1), entry(2)}, kKey);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].size(), kSyncHeaderBytes + kSyncMacBytes);
  SyncMessage m = must_decode(out[0]);
  EXPECT_EQ(m.header.type, kSyncSnapshotEnd);
  EXPECT_EQ(m.header.sender, 4u);
  EXPECT_EQ(m.header.seq, 7u);
  EXPECT_TRUE(m.affinity.empty());
  EXPECT_EQ(refusal(out[0], std::vector<uint8_t>(32, 0x5b)), "bad MAC (wrong key or altered)");
}

TEST(SyncCodec, ForgedAlteredOrMalformedDatagramsAreRefused) {
  auto d = encode_sync({.sender = 1, .seq = 1, .sent_ms = 1}, {entry(1), entry(2)}, kKey)[0];
  EXPECT_EQ(refusal(d, std::vector<uint8_t>(32, 0x5b)), "bad MAC (wrong key or altered)");
  for (size_t at : {size_t{9}, size_t{40}, d.size() - 40, d.size() - 1}) {
    auto bad = d;
    bad[at] ^= 0x01;
    EXPECT_EQ(refusal(bad),
              at < 4 ? "not an ikelb sync datagram" : "bad MAC (wrong key or altered)")
        << at;
  }
  EXPECT_EQ(refusal({}), "shorter than a header");
  auto magic = d;
  magic[0] = 'X';
  EXPECT_EQ(refusal(magic), "not an ikelb sync datagram");
  auto version = d;
  version[4] = 2;
  EXPECT_EQ(refusal(version), "unsupported version 2");

  // Structurally bad but correctly signed (a peer with the key and a bug): still refused.
  auto more = d;
  more[29] = 3;  // claims a third record
  EXPECT_EQ(refusal(resign(more)), "truncated record header");
  auto fewer = d;
  fewer[29] = 1;
  EXPECT_EQ(refusal(resign(fewer)), "bytes after the last record");
  auto family = d;
  family[kSyncHeaderBytes + 3] = 5;
  EXPECT_EQ(refusal(resign(family)), "bad address family 5");
  auto name = d;
  name[kSyncHeaderBytes + 3 + 21] = 200;  // vs name length beyond the record
  EXPECT_EQ(refusal(resign(name)), "truncated name");
  auto type = d;
  type[5] = 9;
  EXPECT_EQ(refusal(resign(type)), "unknown message type 9");
}

SyncSpiOwner owner(int n, uint8_t kind = IKELB_SPI_IKE) {
  SyncSpiOwner r;
  r.vs = "vpn";
  r.backend = "gw" + std::to_string(n % 3 + 1);
  r.kind = kind;
  r.spi = kind == IKELB_SPI_IKE ? 0x0102030405060708ull + uint64_t(n) : 0xc0000000u + uint32_t(n);
  r.age_ms = 10 + uint32_t(n);
  return r;
}

TEST(SyncCodec, SpiOwnersRideAlongAffinityRecords) {
  const std::vector<SyncAffinity> aff = {entry(1), entry(2)};
  std::vector<SyncSpiOwner> spi = {owner(1), owner(2, IKELB_SPI_ESP)};
  auto out = encode_sync({.sender = 2, .seq = 5, .sent_ms = 7}, aff, spi, kKey);
  ASSERT_EQ(out.size(), 1u);
  SyncMessage m = must_decode(out[0]);
  EXPECT_EQ(m.affinity, aff);
  EXPECT_EQ(m.spi_owners, spi);
  // Type 2 on the wire: kind, SPI, age, names.
  const size_t at = kSyncHeaderBytes + 2 * 3 + 2 * (17 + 4 + 2 + 3 + 3);
  EXPECT_EQ(out[0][at], kSyncRecordSpiOwner);
  EXPECT_EQ(out[0][at + 3], IKELB_SPI_IKE);
  EXPECT_EQ(out[0][at + 4], 0x01);
  EXPECT_EQ(out[0][at + 11], 0x09);

  // Only SPI owners; many of them are split over datagrams.
  spi.clear();
  for (int i = 0; i < 200; i++) spi.push_back(owner(i, i % 2 ? IKELB_SPI_ESP : IKELB_SPI_IKE));
  out = encode_sync({.sender = 2, .seq = 5, .sent_ms = 7}, {}, spi, kKey);
  ASSERT_GT(out.size(), 1u);
  std::vector<SyncSpiOwner> back;
  for (const auto& d : out) {
    EXPECT_LE(d.size(), kSyncMaxDatagram);
    SyncMessage part = must_decode(d);
    back.insert(back.end(), part.spi_owners.begin(), part.spi_owners.end());
  }
  EXPECT_EQ(back, spi);

  // A bad kind is refused both ways.
  EXPECT_THROW(encode_sync({.sender = 2}, {}, {owner(1, 3)}, kKey), std::invalid_argument);
  // A name's length is one byte: 255 fits (RoundTripOfBothFamiliesAndTheHeaderLayout), 256 not.
  SyncSpiOwner long_vs = owner(1), long_backend = owner(2);
  long_vs.vs = long_backend.backend = std::string(256, 'x');
  EXPECT_THROW(encode_sync({.sender = 2}, {}, {long_vs}, kKey), std::invalid_argument);
  EXPECT_THROW(encode_sync({.sender = 2}, {}, {long_backend}, kKey), std::invalid_argument);
  EXPECT_THROW(encode_sync({.sender = 2}, {entry(1, std::string(256, 'x'))}, kKey),
               std::invalid_argument);
  auto d = encode_sync({.sender = 2, .seq = 1, .sent_ms = 1}, {}, {owner(1)}, kKey)[0];
  auto kind = d;
  kind[kSyncHeaderBytes + 3] = 7;
  EXPECT_EQ(refusal(resign(kind)), "bad SPI kind 7");
  auto name = d;
  name[kSyncHeaderBytes + 3 + 13] = 200;
  EXPECT_EQ(refusal(resign(name)), "truncated name");
  auto shortened = d;
  shortened[kSyncHeaderBytes + 2] = 5;  // body length 5
  EXPECT_EQ(refusal(resign(shortened)), "SPI owner record too short");
}

TEST(SyncCodec, UnknownRecordTypesAreSkippedAndCounted) {
  auto d = encode_sync({.sender = 1, .seq = 1, .sent_ms = 1}, {entry(1), entry(2)}, kKey)[0];
  d[kSyncHeaderBytes] = 9;  // the first record becomes a type this version does not know
  SyncMessage m = must_decode(resign(d));
  EXPECT_EQ(m.unknown_records, 1u);
  ASSERT_EQ(m.affinity.size(), 1u);
  EXPECT_EQ(m.affinity[0], entry(2));
}

constexpr uint64_t kNow = 1'000'000;

TEST(SyncReplay, EachSequenceOnceWithinTheWindowAndTheClockSkew) {
  SyncReplayWindow w(30000);
  const uint64_t now = kNow;
  auto h = [&](uint32_t sender, uint64_t seq, uint64_t sent = kNow) {
    return SyncHeader{.sender = sender, .seq = seq, .sent_ms = sent};
  };
  EXPECT_EQ(w.accept(h(1, 100), now), "");
  EXPECT_EQ(w.accept(h(1, 100), now), "sequence 100 replayed");
  EXPECT_EQ(w.accept(h(1, 102), now), "");
  EXPECT_EQ(w.accept(h(1, 101), now), "");  // late but inside the window
  EXPECT_EQ(w.accept(h(1, 101), now), "sequence 101 replayed");
  EXPECT_EQ(w.accept(h(2, 100), now), "");  // per sender
  EXPECT_EQ(w.accept(h(1, 200), now), "");
  EXPECT_EQ(w.accept(h(1, 136), now), "sequence 136 is too old");
  EXPECT_EQ(w.accept(h(1, 137), now), "");
  EXPECT_EQ(w.accept(h(1, 201, now - 30001), now), "sent 30001 ms from this node's clock");
  EXPECT_EQ(w.accept(h(1, 201, now + 30000), now), "");
}

TEST(SyncMergeRule, NeverOverwritesAFresherLocalEntry) {
  EXPECT_EQ(sync_merge(std::nullopt, 500, true), SyncMerge::kInsert);
  EXPECT_EQ(sync_merge(900, 500, true), SyncMerge::kInsert);     // local older
  EXPECT_EQ(sync_merge(100, 500, true), SyncMerge::kKeepLocal);  // local fresher
  EXPECT_EQ(sync_merge(500, 500, true), SyncMerge::kKeepLocal);  // a tie keeps what is here
  EXPECT_EQ(sync_merge(std::nullopt, 5, false), SyncMerge::kNotServing);
  EXPECT_EQ(sync_merge(std::nullopt, 5, std::nullopt), SyncMerge::kUnknownTarget);
  EXPECT_EQ(sync_merge(100, 500, false), SyncMerge::kKeepLocal);
}

}  // namespace
}  // namespace ikelb
