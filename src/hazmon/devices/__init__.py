"""Control-node logic for the devices the rollout configures remotely: NVRs over ISAPI (GB/T 28181
platform access), monitoring switches through netmiko (N6 port reservation), AI-box analytics.

The Ansible modules in plugins/modules/ are thin shells over these modules (ARCHITECTURE.md), so
that the logic is tested once, against the lab's simulators.
"""
