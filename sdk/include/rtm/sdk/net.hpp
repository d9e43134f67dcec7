#pragma once
// Paho MQTT C sets no TCP_NODELAY on its sockets and has no option for it (paho.mqtt.c
// #530): with Nagle's algorithm and delayed ACKs a request/response over loopback takes
// ~40 ms instead of well under 1 ms. The SDK calls this after every connect.
#include <string>

namespace rtm::sdk {

// Sets TCP_NODELAY on every TCP socket of this process whose peer port is the port of
// `broker_uri` ("tcp://host:port"). Returns how many sockets it set.
int enable_tcp_nodelay_to(const std::string& broker_uri);

}  // namespace rtm::sdk
