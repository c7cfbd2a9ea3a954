// ikelbd's side of systemd (service_notify.h) and its capability diagnosis (capabilities.h).
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstdlib>
#include <string>

#include "capabilities.h"
#include "service_notify.h"

namespace ikelb {
namespace {

TEST(NotifyAddress, PathsAndAbstractNames) {
  auto path = notify_address("/run/systemd/notify");
  ASSERT_TRUE(path);
  EXPECT_STREQ(path->addr.sun_path, "/run/systemd/notify");
  EXPECT_EQ(path->len, offsetof(sockaddr_un, sun_path) + 20);  // with the NUL

  auto abstract = notify_address("@ikelb/notify");
  ASSERT_TRUE(abstract);
  EXPECT_EQ(abstract->addr.sun_path[0], '\0');
  EXPECT_EQ(std::string(abstract->addr.sun_path + 1, 12), "ikelb/notify");
  EXPECT_EQ(abstract->len, offsetof(sockaddr_un, sun_path) + 13);  // no NUL counted
}

TEST(NotifyAddress, RejectsWhatIsNoSocketAddress) {
  EXPECT_FALSE(notify_address(""));
  EXPECT_FALSE(notify_address("/"));
  EXPECT_FALSE(notify_address("@"));
  EXPECT_FALSE(notify_address("run/notify"));
  EXPECT_FALSE(notify_address("/" + std::string(sizeof(sockaddr_un::sun_path) - 1, 'a')));
  EXPECT_TRUE(notify_address("/" + std::string(sizeof(sockaddr_un::sun_path) - 2, 'a')));
}

// A datagram socket bound where NOTIFY_SOCKET points, like systemd's.
class NotifySocket : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ikelb-notify-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/notify";
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd_, 0);
    auto a = notify_address(path_);
    ASSERT_TRUE(a);
    ASSERT_EQ(bind(fd_, reinterpret_cast<const sockaddr*>(&a->addr), a->len), 0);
    setenv("NOTIFY_SOCKET", path_.c_str(), 1);
  }
  void TearDown() override {
    unsetenv("NOTIFY_SOCKET");
    if (fd_ >= 0) close(fd_);
    unlink(path_.c_str());
    rmdir(dir_.c_str());
  }
  std::string receive() {
    char buf[512];
    ssize_t n = recv(fd_, buf, sizeof(buf), MSG_DONTWAIT);
    return n < 0 ? "<nothing>" : std::string(buf, static_cast<size_t>(n));
  }
  std::string dir_, path_;
  int fd_ = -1;
};

TEST_F(NotifySocket, SendsOneDatagramPerState) {
  EXPECT_EQ(notify_service("READY=1\nSTATUS=1 virtual server"), "");
  EXPECT_EQ(notify_service("RELOADING=1\n" + monotonic_usec_field()), "");
  EXPECT_EQ(receive(), "READY=1\nSTATUS=1 virtual server");
  std::string reloading = receive();
  EXPECT_TRUE(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC=")) << reloading;
  EXPECT_GT(std::stoull(reloading.substr(reloading.find('=', 12) + 1)), 0u);
  EXPECT_EQ(receive(), "<nothing>");
}

TEST_F(NotifySocket, SaysWhyItCouldNotSend) {
  setenv("NOTIFY_SOCKET", (dir_ + "/absent").c_str(), 1);
  EXPECT_NE(notify_service("READY=1").find("No such file or directory"), std::string::npos);
  setenv("NOTIFY_SOCKET", "relative/notify", 1);
  EXPECT_NE(notify_service("READY=1").find("is not a unix socket address"), std::string::npos);
  unsetenv("NOTIFY_SOCKET");
  EXPECT_EQ(notify_service("READY=1"), "");  // no systemd: nothing to do, no error
  EXPECT_EQ(receive(), "<nothing>");
}

TEST(Capabilities, NamesWhatIsMissing) {
  using V = std::vector<std::string>;
  EXPECT_EQ(missing_capabilities({"cap_bpf", "cap_net_admin", "cap_perfmon"}), V{});
  EXPECT_EQ(missing_capabilities({"cap_sys_admin", "cap_perfmon", "cap_bpf", "cap_net_admin"}),
            V{});
  EXPECT_EQ(missing_capabilities({"cap_bpf", "cap_perfmon"}), V{"cap_net_admin"});
  EXPECT_EQ(missing_capabilities({"cap_net_admin", "cap_sys_admin"}),
            (V{"cap_bpf", "cap_perfmon"}));
  EXPECT_EQ(missing_capabilities({}), (V{"cap_bpf", "cap_net_admin", "cap_perfmon"}));
}

}  // namespace
}  // namespace ikelb
