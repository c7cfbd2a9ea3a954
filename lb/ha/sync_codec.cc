#include "sync_codec.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstring>
#include <stdexcept>

namespace ikelb {
namespace {

constexpr uint8_t kMagic[4] = {'I', 'K', 'S', 'Y'};

void put16(std::vector<uint8_t>& b, uint16_t v) {
  b.push_back(uint8_t(v >> 8));
  b.push_back(uint8_t(v));
}
void put32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}
void put64(std::vector<uint8_t>& b, uint64_t v) {
  for (int s = 56; s >= 0; s -= 8) b.push_back(uint8_t(v >> s));
}
uint64_t get(std::span<const uint8_t> b, size_t at, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; i++) v = (v << 8) | b[at + i];
  return v;
}

std::vector<uint8_t> mac_of(std::span<const uint8_t> data, std::span<const uint8_t> key) {
  std::vector<uint8_t> out(EVP_MAX_MD_SIZE);
  unsigned n = 0;
  if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), data.data(), data.size(),
            out.data(), &n))
    throw std::runtime_error("HMAC-SHA256 failed");
  out.resize(n);
  return out;
}

// The two names that end a record body, each after its length byte.
void put_names(std::vector<uint8_t>& b, const std::string& vs, const std::string& backend) {
  if (vs.size() > 255 || backend.size() > 255)
    throw std::invalid_argument("sync: a name longer than 255 bytes cannot be encoded");
  b.push_back(uint8_t(vs.size()));
  b.insert(b.end(), vs.begin(), vs.end());
  b.push_back(uint8_t(backend.size()));
  b.insert(b.end(), backend.begin(), backend.end());
}

std::vector<uint8_t> affinity_body(const SyncAffinity& r) {
  std::vector<uint8_t> b;
  b.push_back(r.client.family == IKELB_AF_INET6 ? 6 : 4);
  const auto* a = reinterpret_cast<const uint8_t*>(&r.client.addr);
  b.insert(b.end(), a, a + 16);
  put32(b, r.age_ms);
  put_names(b, r.vs, r.backend);
  return b;
}

std::vector<uint8_t> spi_owner_body(const SyncSpiOwner& r) {
  if (r.kind != IKELB_SPI_IKE && r.kind != IKELB_SPI_ESP)
    throw std::invalid_argument("sync: SPI kind " + std::to_string(r.kind) + " is not IKE or ESP");
  std::vector<uint8_t> b;
  b.push_back(r.kind);
  put64(b, r.spi);
  put32(b, r.age_ms);
  put_names(b, r.vs, r.backend);
  return b;
}

// The two names that end a record body at `p`; "" or why not.
std::string read_names(std::span<const uint8_t> body, size_t p, std::string& vs,
                       std::string& backend) {
  const size_t len = body.size();
  for (std::string* name : {&vs, &backend}) {
    if (p >= len || p + 1 + body[p] > len) return "truncated name";
    name->assign(reinterpret_cast<const char*>(body.data() + p + 1), body[p]);
    p += 1 + body[p];
  }
  return p == len ? "" : "trailing bytes in a record";
}

std::vector<uint8_t> header_bytes(const SyncHeader& h, uint64_t seq, uint16_t count) {
  std::vector<uint8_t> b(kMagic, kMagic + 4);
  b.push_back(kSyncVersion);
  b.push_back(h.type);
  put16(b, 0);
  put32(b, h.sender);
  put64(b, seq);
  put64(b, h.sent_ms);
  put16(b, count);
  put16(b, 0);
  return b;
}

std::vector<uint8_t> seal(std::vector<uint8_t> body, std::span<const uint8_t> key) {
  std::vector<uint8_t> mac = mac_of(body, key);
  body.insert(body.end(), mac.begin(), mac.end());
  return body;
}

}  // namespace

std::vector<std::vector<uint8_t>> encode_sync(const SyncHeader& header,
                                              const std::vector<SyncAffinity>& records,
                                              std::span<const uint8_t> key, size_t max_bytes) {
  return encode_sync(header, records, {}, key, max_bytes);
}

std::vector<std::vector<uint8_t>> encode_sync(const SyncHeader& header,
                                              const std::vector<SyncAffinity>& records,
                                              const std::vector<SyncSpiOwner>& spi_owners,
                                              std::span<const uint8_t> key, size_t max_bytes) {
  if (max_bytes < kSyncHeaderBytes + kSyncMacBytes + 3 + 17 + 4 + 2 + 2 * 255)
    throw std::invalid_argument("sync: datagram limit too small for one record");
  std::vector<std::vector<uint8_t>> out;
  uint64_t seq = header.seq;
  if (header.type != kSyncRecords || (records.empty() && spi_owners.empty())) {
    out.push_back(seal(header_bytes(header, seq, 0), key));
    return out;
  }
  std::vector<uint8_t> recs;
  uint16_t count = 0;
  auto flush = [&] {
    std::vector<uint8_t> d = header_bytes(header, seq++, count);
    d.insert(d.end(), recs.begin(), recs.end());
    out.push_back(seal(std::move(d), key));
    recs.clear();
    count = 0;
  };
  auto add = [&](uint8_t type, const std::vector<uint8_t>& body) {
    if (kSyncHeaderBytes + recs.size() + 3 + body.size() + kSyncMacBytes > max_bytes ||
        count == 0xFFFF)
      flush();
    recs.push_back(type);
    put16(recs, static_cast<uint16_t>(body.size()));
    recs.insert(recs.end(), body.begin(), body.end());
    count++;
  };
  for (const SyncAffinity& r : records) add(kSyncRecordAffinity, affinity_body(r));
  for (const SyncSpiOwner& r : spi_owners) add(kSyncRecordSpiOwner, spi_owner_body(r));
  flush();
  return out;
}

std::variant<SyncMessage, std::string> decode_sync(std::span<const uint8_t> d,
                                                   std::span<const uint8_t> key) {
  if (d.size() < kSyncHeaderBytes + kSyncMacBytes) return std::string("shorter than a header");
  if (std::memcmp(d.data(), kMagic, 4) != 0) return std::string("not an ikelb sync datagram");
  if (d[4] != kSyncVersion) return "unsupported version " + std::to_string(d[4]);
  const size_t signed_bytes = d.size() - kSyncMacBytes;
  std::vector<uint8_t> mac;
  try {
    mac = mac_of(d.first(signed_bytes), key);
  } catch (const std::exception& e) {
    return std::string(e.what());
  }
  if (mac.size() != kSyncMacBytes || CRYPTO_memcmp(mac.data(), d.data() + signed_bytes, 32) != 0)
    return std::string("bad MAC (wrong key or altered)");

  SyncMessage m;
  m.header.type = d[5];
  m.header.sender = static_cast<uint32_t>(get(d, 8, 4));
  m.header.seq = get(d, 12, 8);
  m.header.sent_ms = get(d, 20, 8);
  const size_t count = get(d, 28, 2);
  if (m.header.type != kSyncRecords && m.header.type != kSyncSnapshotRequest &&
      m.header.type != kSyncSnapshotEnd)
    return "unknown message type " + std::to_string(m.header.type);
  size_t at = kSyncHeaderBytes;
  for (size_t i = 0; i < count; i++) {
    if (at + 3 > signed_bytes) return std::string("truncated record header");
    const uint8_t type = d[at];
    const size_t len = get(d, at + 1, 2);
    at += 3;
    if (at + len > signed_bytes) return std::string("truncated record");
    auto body = d.subspan(at, len);
    at += len;
    if (type == kSyncRecordSpiOwner) {
      if (len < 1 + 8 + 4 + 2) return std::string("SPI owner record too short");
      SyncSpiOwner r;
      r.kind = body[0];
      if (r.kind != IKELB_SPI_IKE && r.kind != IKELB_SPI_ESP)
        return "bad SPI kind " + std::to_string(r.kind);
      r.spi = get(body, 1, 8);
      r.age_ms = static_cast<uint32_t>(get(body, 9, 4));
      if (std::string why = read_names(body, 13, r.vs, r.backend); !why.empty()) return why;
      m.spi_owners.push_back(std::move(r));
      continue;
    }
    if (type != kSyncRecordAffinity) {
      m.unknown_records++;
      continue;
    }
    if (len < 17 + 4 + 2) return std::string("affinity record too short");
    SyncAffinity r;
    if (body[0] != 4 && body[0] != 6) return "bad address family " + std::to_string(body[0]);
    r.client.family = body[0] == 6 ? IKELB_AF_INET6 : IKELB_AF_INET;
    std::memcpy(&r.client.addr, body.data() + 1, 16);
    r.age_ms = static_cast<uint32_t>(get(body, 17, 4));
    if (std::string why = read_names(body, 21, r.vs, r.backend); !why.empty()) return why;
    m.affinity.push_back(std::move(r));
  }
  if (at != signed_bytes) return std::string("bytes after the last record");
  return m;
}

std::string SyncReplayWindow::accept(const SyncHeader& h, uint64_t now_ms) {
  const uint64_t skew = h.sent_ms > now_ms ? h.sent_ms - now_ms : now_ms - h.sent_ms;
  if (skew > skew_ms_) return "sent " + std::to_string(skew) + " ms from this node's clock";
  Peer& p = peers_[h.sender];
  if (p.seen == 0 || h.seq > p.highest) {
    const uint64_t shift = p.seen == 0 ? 64 : h.seq - p.highest;
    p.seen = (shift >= 64 ? 0 : p.seen << shift) | 1;
    p.highest = h.seq;
    return "";
  }
  const uint64_t behind = p.highest - h.seq;
  if (behind >= 64) return "sequence " + std::to_string(h.seq) + " is too old";
  if (p.seen & (1ull << behind)) return "sequence " + std::to_string(h.seq) + " replayed";
  p.seen |= 1ull << behind;
  return "";
}

SyncMerge sync_merge(std::optional<uint32_t> local_age_ms, uint32_t remote_age_ms,
                     std::optional<bool> target_serving) {
  if (!target_serving) return SyncMerge::kUnknownTarget;
  if (local_age_ms && *local_age_ms <= remote_age_ms) return SyncMerge::kKeepLocal;
  if (!*target_serving) return SyncMerge::kNotServing;
  return SyncMerge::kInsert;
}

}  // namespace ikelb
