include $(sort $(wildcard $(BR2_EXTERNAL_TUANJU_PATH)/package/*/*.mk))
