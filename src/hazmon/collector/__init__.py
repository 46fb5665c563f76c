"""hazmon-collector: the agent on the data-acquisition gateway (D1, D5, N4).

Polls the enterprise's DCS/GDS sources (Modbus TCP, Modbus RTU, OPC UA), keeps every sample in
a durable on-disk queue and publishes it to the platform broker over MQTT (hazmon.wire).
"""
